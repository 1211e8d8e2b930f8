import numpy as np
import pytest

from edgeseal.audit.robustness import fgsm, pgd, random_search_attack, robust_accuracy


@pytest.fixture(scope="module")
def eval_set(digits_linear):
    ds, split, _ = digits_linear
    idx = split.nonmembers[:150]
    return ds.x[idx], ds.y[idx]


def test_white_box_attacks_respect_the_budget_and_the_pixel_range(digits_linear, eval_set):
    _, _, lin = digits_linear
    x, y = eval_set
    for attack in (lambda e: fgsm(lin, x, y, e, lo=0.0, hi=1.0),
                   lambda e: pgd(lin, x, y, e, steps=10, step=e / 4, lo=0.0, hi=1.0)):
        xa = attack(0.1)
        assert xa.shape == x.shape and xa.dtype == np.float32
        assert np.abs(xa - x).max() <= 0.1 + 1e-6
        assert xa.min() >= 0.0 and xa.max() <= 1.0
        np.testing.assert_array_equal(attack(0.0), x)


def test_robust_accuracy_falls_with_epsilon_and_pgd_is_stronger_than_fgsm(digits_artifacts, eval_set):
    ref = digits_artifacts["fp32"]
    x, y = eval_set
    clean = robust_accuracy(ref, x, y)
    assert clean > 0.9
    accs_fgsm, accs_pgd = [], []
    for eps in (0.02, 0.05, 0.1, 0.2):
        accs_fgsm.append(robust_accuracy(ref, fgsm(ref.module, x, y, eps, lo=0, hi=1), y))
        accs_pgd.append(robust_accuracy(ref, pgd(ref.module, x, y, eps, steps=20, step=eps / 4, lo=0, hi=1), y))
    assert all(np.diff(accs_pgd) <= 0) and accs_pgd[-1] < 0.2 < clean
    assert all(p <= f + 0.02 for p, f in zip(accs_pgd, accs_fgsm))
    # transferred to the int8 artifact the fp32 adversarial examples still work (same weights, rounded)
    x_adv = pgd(ref.module, x, y, 0.1, steps=20, step=0.025, lo=0, hi=1)
    assert abs(robust_accuracy(digits_artifacts["int8_sealed"], x_adv, y) - robust_accuracy(ref, x_adv, y)) < 0.1


def test_black_box_attack_uses_only_scores_within_budget(digits_artifacts, eval_set):
    art = digits_artifacts["int8_sealed"]
    x, y = eval_set
    before = art.queries
    xa = random_search_attack(art, x, y, 0.2, queries=100, lo=0.0, hi=1.0, seed=0)
    used = art.queries - before
    assert np.abs(xa - x).max() <= 0.2 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert len(x) <= used <= len(x) * 101  # one start query + at most one per step and example
    clean = robust_accuracy(art, x, y)
    attacked = robust_accuracy(art, xa, y)
    assert attacked < clean - 0.5  # it really attacks
    # within reach of white-box PGD although it never sees a gradient
    x_pgd = pgd(digits_artifacts["fp32"].module, x, y, 0.2, steps=20, step=0.05, lo=0.0, hi=1.0)
    assert attacked <= robust_accuracy(art, x_pgd, y) + 0.25
    # more queries never make it weaker (same seed, the search is a prefix)
    xa2 = random_search_attack(art, x, y, 0.2, queries=20, lo=0.0, hi=1.0, seed=0)
    assert robust_accuracy(art, xa2, y) >= attacked
