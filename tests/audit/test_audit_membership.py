"""Membership attacks on models whose leakage is known by construction (numpy only, fast)."""

import numpy as np
import pytest

from edgeseal.audit import membership as MI
from edgeseal.runtime.errors import ConfigError


def _data(n=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def _memorizer(strength):
    """A 'model' that is confident by ``strength`` extra logits on the records it was trained on."""

    def train_fn(xt, yt, seed):
        seen = {r.tobytes(): int(c) for r, c in zip(xt, yt)}
        rng = np.random.default_rng(seed)
        noise_scale = 0.3

        def predict(x):
            z = np.zeros((len(x), 2))
            z[:, 1] = 2.0 * x[:, 0] + noise_scale * rng.normal(size=len(x))  # a generalizing part
            for i, r in enumerate(x):
                if r.tobytes() in seen:
                    z[i, seen[r.tobytes()]] += strength
            return z

        return predict

    return train_fn


@pytest.mark.parametrize("strength,lo,hi", [(0.0, 0.4, 0.6), (3.0, 0.9, 1.0)])
def test_lira_detects_exactly_the_leakage_that_exists(strength, lo, hi):
    x, y = _data()
    train_fn = _memorizer(strength)
    refs = MI.train_reference_models(x, y, count=8, seed=3, train_fn=train_fn)
    assert refs.keep.shape == (8, len(x))
    np.testing.assert_array_equal(refs.keep.sum(0), 4)  # balanced: every record IN for half the models
    is_member = np.random.default_rng(9).random(len(x)) < 0.5
    target = train_fn(x[is_member], y[is_member], 77)
    z = target(x)
    results = {a: MI.evaluate_scores(a.value, MI.attack_scores(a, z, y, refs), is_member) for a in MI.MiaAttack}
    lira = results[MI.MiaAttack.LIRA]
    assert lo <= lira.auc <= hi
    if strength:
        assert lira.tpr_at_1pct_fpr > 0.5  # the low-FPR regime is where LiRA shines
        assert results[MI.MiaAttack.LOSS].auc > 0.75
        assert lira.advantage > 0.7
    assert lira.fpr_resolution == pytest.approx(1 / (~is_member).sum())
    d = lira.to_dict()
    assert set(d) == {"attack", "auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "fpr_resolution", "roc"}
    assert d["roc"]["fpr"][0] == 0.0 and d["roc"]["fpr"][-1] == 1.0 and d["roc"]["tpr"][-1] == 1.0
    assert all(np.diff(d["roc"]["tpr"]) >= 0)


def test_combining_two_independent_leaky_answers_beats_either_alone():
    rng = np.random.default_rng(0)
    member = rng.random(2000) < 0.5
    a = member * 0.5 + rng.normal(size=2000)
    b = (member * 0.5 + rng.normal(size=2000)) * 100  # independent noise, other scale: standardization matters
    from edgeseal.audit.metrics import auc

    combined = MI.combine_scores([a, b])
    assert auc(combined, member) > max(auc(a, member), auc(b, member)) + 0.01


def test_reference_model_errors():
    x, y = _data(40)
    with pytest.raises(ConfigError, match="even"):
        MI.train_reference_models(x, y, count=3, seed=0, train_fn=_memorizer(1.0))
    with pytest.raises(ConfigError, match="reference models"):
        MI.attack_scores("lira", np.zeros((40, 2)), y, None)
    with pytest.raises(ValueError):
        MI.attack_scores("shadowy", np.zeros((40, 2)), y, None)
