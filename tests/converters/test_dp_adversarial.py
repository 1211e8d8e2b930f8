"""edgeseal.converters.adversarial and edgeseal.converters.dp on a tiny model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseal.converters.adversarial import (  # noqa: E402
    AdversarialConfig,
    DefensivePruneConfig,
    adversarial_finetune,
    defensive_prune,
    fgsm,
    pgd,
)
from edgeseal.converters.train import TrainConfig, fit  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None][:400]
    y = d.target.astype(np.int64)[:400]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    fit(model, x, y, TrainConfig(epochs=4, lr=3e-3, show_progress=False))
    return x, y, model


def test_pgd_stays_in_the_ball_and_the_range_and_beats_fgsm(data):
    import copy

    x, y, model = data
    m = copy.deepcopy(model)
    xa = pgd(m, x[:100], y[:100], 0.1, steps=10, step=0.025, lo=0.0, hi=1.0, seed=0)
    assert xa.shape == x[:100].shape and np.abs(xa - x[:100]).max() <= 0.1 + 1e-6
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    with torch.no_grad():
        acc = lambda z: float((m(torch.from_numpy(z)).argmax(1).numpy() == y[:100]).mean())  # noqa: E731
    assert acc(xa) <= acc(fgsm(m, x[:100], y[:100], 0.1, lo=0.0, hi=1.0)) < acc(x[:100])
    assert np.array_equal(pgd(m, x[:5], y[:5], 0.0, steps=3, step=0.1), x[:5])
    with pytest.raises(ConfigError, match="PGD needs"):
        pgd(m, x[:5], y[:5], 0.1, steps=0, step=0.1)


def test_adversarial_finetune_keeps_pruned_zeros(data):
    import copy

    x, y, model = data
    m = copy.deepcopy(model)
    with torch.no_grad():
        m[3].weight[:, ::2] = 0  # "pruned"
    adversarial_finetune(m, x, y, AdversarialConfig(epsilon=0.1, steps=2, lo=0.0, hi=1.0,
                                                    train=TrainConfig(epochs=1, show_progress=False)))
    assert bool((m[3].weight[:, ::2] == 0).all()) and bool((m[3].weight[:, 1::2] != 0).any())
    with pytest.raises(ConfigError, match="epsilon"):
        AdversarialConfig(epsilon=0)


def test_defensive_prune_masks_the_most_shifted_channels(data):
    import copy

    x, y, model = data
    m, plan = defensive_prune(copy.deepcopy(model), x, y, DefensivePruneConfig(ratio=0.25, epsilon=0.1, samples=64,
                                                                                lo=0.0, hi=1.0),
                              fine_tune=lambda mm: fit(mm, x, y, TrainConfig(epochs=1, show_progress=False)))
    assert [(n, k, c) for n, k, c in plan.layers] == [("0", 2, 8), ("3", 8, 32)]  # not the head ("5")
    assert plan.mean_shift_masked > plan.mean_shift_kept
    dead_conv = (m[0].weight.detach().abs().sum(dim=(1, 2, 3)) == 0) & (m[0].bias.detach() == 0)
    assert int(dead_conv.sum()) == 2 and not hasattr(m[0], "weight_mask")  # masks baked in after fine-tuning
    with pytest.raises(ConfigError, match="ratio"):
        DefensivePruneConfig(ratio=1.0)


def test_dp_finetune_keeps_zeros_and_states_its_scope(data):
    pytest.importorskip("opacus")
    import copy

    from edgeseal.converters.dp import DpConfig, dp_distill, dp_finetune

    x, y, model = data
    m = copy.deepcopy(model)
    with torch.no_grad():
        m[3].weight[:, ::2] = 0
    m, r = dp_finetune(m, x, y, DpConfig(epsilon=2.0, epochs=1, show_progress=False))
    assert bool((m[3].weight[:, ::2] == 0).all())
    assert r.mode == "finetune" and r.epsilon <= 2.0 + 1e-6 and r.records == len(x)
    assert any("pretraining" in n for n in r.not_covered)
    assert not any(hasattr(p, "grad_sample") for p in m.parameters())  # Opacus' leftovers removed
    student, rd = dp_distill(model, copy.deepcopy(model), x, DpConfig(epsilon=8.0, epochs=1, show_progress=False))
    assert rd.mode == "distill" and any("teacher" in n for n in rd.not_covered)
    with pytest.raises(ConfigError, match="delta"):
        DpConfig(epsilon=1.0, delta=1.5)
    bn = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 10))
    from edgeseal.runtime.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="GroupNorm"):
        dp_finetune(bn, x.reshape(len(x), -1), y, DpConfig(epsilon=1.0, epochs=1, show_progress=False))
