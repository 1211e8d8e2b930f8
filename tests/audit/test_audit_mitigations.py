import numpy as np
import pytest

from edgeseal.audit.data import load_dataset, member_split
from edgeseal.audit.mitigations import adversarial_finetune, dp_sgd_train
from edgeseal.audit.robustness import pgd
from edgeseal.audit.training import TrainConfig, accuracy, make_mlp, train_classifier


@pytest.fixture(scope="module")
def bc():
    ds = load_dataset("breast_cancer")
    return ds, member_split(len(ds.y), seed=0)


def _acc(model, x, y):
    import torch

    with torch.no_grad():
        return accuracy(model(torch.from_numpy(x)).numpy(), y)


def test_dp_sgd_spends_at_most_its_budget_and_still_learns(bc):
    ds, sp = bc
    model = make_mlp(30, 2, (32,), seed=0)
    model, dp = dp_sgd_train(model, ds.x[sp.members], ds.y[sp.members], epsilon=2.0, delta=1e-3, epochs=15,
                             max_grad_norm=1.0, lr=1e-2, batch_size=32, seed=0)
    assert 1.0 < dp.epsilon <= 2.0 + 0.05  # the accountant's spent epsilon, close to the target
    assert dp.delta == 1e-3 and dp.noise_multiplier > 0.5
    assert dp.sample_rate == pytest.approx(32 / len(sp.members), rel=0.05)
    assert _acc(model, ds.x[sp.nonmembers], ds.y[sp.nonmembers]) > 0.85  # breast cancer is easy even with noise
    # a tighter budget needs more noise
    _, tight = dp_sgd_train(make_mlp(30, 2, (32,), seed=0), ds.x[sp.members], ds.y[sp.members], epsilon=0.5,
                            delta=1e-3, epochs=15, max_grad_norm=1.0, lr=1e-2, batch_size=32, seed=0)
    assert tight.noise_multiplier > dp.noise_multiplier and tight.epsilon <= 0.55


def test_pruning_masks_survive_adversarial_fine_tuning_and_it_buys_robustness():
    ds = load_dataset("digits")
    sp = member_split(len(ds.y), seed=0)
    xm, ym, xt, yt = ds.x[sp.members], ds.y[sp.members], ds.x[sp.nonmembers][:300], ds.y[sp.nonmembers][:300]
    cfg = TrainConfig(hidden=(64,), epochs=15, batch_size=64)
    base = train_classifier(make_mlp(64, 10, (64,), seed=0), xm, ym, cfg, seed=0)
    import copy
    import warnings

    from edgeseal.converters.prune import UnstructuredPruneConfig, prune_unstructured, sparsity

    def harden(m, _hook):  # runs while the pruning masks are attached
        return adversarial_finetune(m, xm, ym, eps=0.1, epochs=4, batch_size=64, lr=1e-3, steps=5, lo=0.0, hi=1.0,
                                    seed=0)

    one_shot = UnstructuredPruneConfig(amount=0.7, gradual=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = prune_unstructured(copy.deepcopy(base), one_shot)
        hard = prune_unstructured(copy.deepcopy(base), one_shot, fine_tune=harden)
    for m in (plain, hard):
        assert sparsity(m) == pytest.approx(0.7, abs=0.01)  # zeros survived the fine-tuning

    def robust(m):
        return _acc(m, pgd(m, xt, yt, 0.1, steps=10, step=0.025, lo=0.0, hi=1.0), yt)

    assert robust(hard) > robust(plain) + 0.04  # measured: 0.58 vs 0.51 at this seed
    assert _acc(hard, xt, yt) > 0.85
