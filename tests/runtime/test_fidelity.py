import math

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.fidelity import FidelityBudget, fidelity, sqnr_db, top_k_overlap


def test_metrics_on_hand_made_logits():
    ref = np.array([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    test = np.array([[4.0, 5, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])  # sample 0: top-1 flips, same top-5 set
    f = fidelity(ref, test)
    assert f.top1_agreement == 0.5 and f.top5_overlap == 1.0 and f.n == 2
    noise = 2.0  # (5-4)^2 + (4-5)^2
    assert f.sqnr_db == pytest.approx(10 * math.log10(np.sum(ref**2) / noise))
    cos0 = ref[0] @ test[0] / (np.linalg.norm(ref[0]) * np.linalg.norm(test[0]))
    assert f.min_cosine == pytest.approx(cos0) and f.mean_cosine == pytest.approx((cos0 + 1) / 2)


def test_top_k_overlap_counts_shared_classes():
    ref = np.array([[9.0, 8, 7, 6, 5, 0, 0]])
    test = np.array([[9.0, 8, 0, 0, 0, 7, 6]])  # top 5: {0, 1, 5, 6} and one of the tied classes 2..4
    assert top_k_overlap(ref, test, 2) == 1.0
    assert top_k_overlap(ref, test, 5) == pytest.approx(3 / 5)  # 0, 1 and the tied one


def test_sqnr_identity_and_shapes():
    a = np.ones((2, 3))
    assert sqnr_db(a, a) == math.inf
    with pytest.raises(ConfigError, match="equal shapes"):
        sqnr_db(a, np.ones((3, 2)))
    with pytest.raises(ConfigError, match="samples, classes"):
        fidelity(np.ones(3), np.ones(3))


def test_budget_gates_each_measure():
    ref = np.array([[2.0, 1.0], [1.0, 2.0], [2.0, 1.0], [1.0, 2.0]])
    test = ref.copy()
    test[0] = [1.0, 2.0]
    f = fidelity(ref, test)  # agreement 0.75
    assert FidelityBudget(min_agreement=0.75).check(f) == []
    fails = FidelityBudget(min_agreement=0.99, min_sqnr_db=40.0, min_cosine=0.99).check(f)
    assert len(fails) == 3 and "top-1 agreement 75.00% < 99.00%" in fails[0]
    assert FidelityBudget().empty and not FidelityBudget(min_sqnr_db=20).empty
    with pytest.raises(ConfigError, match="fraction"):
        FidelityBudget(min_agreement=99)
