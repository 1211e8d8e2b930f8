import numpy as np
import pytest
from scipy.stats import rankdata as sp_rankdata
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from edgeseal.audit import metrics as M
from edgeseal.runtime.errors import ConfigError


def test_roc_and_auc_match_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.4
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding creates many ties
    c = M.roc_curve(scores, labels)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(c.fpr, fpr)
    np.testing.assert_allclose(c.tpr, tpr)
    assert M.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert 0.65 < M.auc(scores, labels) < 0.8


def test_advantage_and_tpr_at_fpr_on_a_hand_example():
    # members score 4,3,2 ; non-members 2.5,1,0
    scores = np.array([4, 3, 2, 2.5, 1, 0])
    labels = np.array([1, 1, 1, 0, 0, 0])
    # thresholds: >=3 gives TPR 2/3 at FPR 0; >=2 gives TPR 1 at FPR 1/3
    assert M.tpr_at_fpr(scores, labels, 0.0) == pytest.approx(2 / 3)
    assert M.tpr_at_fpr(scores, labels, 0.01) == pytest.approx(2 / 3)
    assert M.tpr_at_fpr(scores, labels, 1 / 3) == pytest.approx(1.0)
    assert M.advantage(scores, labels) == pytest.approx(2 / 3)
    assert M.auc(scores, labels) == pytest.approx(8 / 9)


def test_perfect_and_inverted_scores():
    labels = np.array([1, 1, 0, 0])
    assert M.auc(np.array([3, 4, 1, 2]), labels) == 1.0
    assert M.auc(np.array([1, 2, 3, 4]), labels) == 0.0
    assert M.tpr_at_fpr(np.array([3, 4, 1, 2]), labels, 0.001) == 1.0


def test_metric_input_errors():
    with pytest.raises(ConfigError, match="both positives"):
        M.auc(np.array([1.0, 2.0]), np.array([1, 1]))
    with pytest.raises(ConfigError, match="NaN"):
        M.auc(np.array([np.nan, 2.0]), np.array([1, 0]))
    with pytest.raises(ConfigError, match="same length"):
        M.auc(np.array([1.0, 2.0, 3.0]), np.array([1, 0]))


def test_rankdata_and_spearman_match_scipy():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=50), 1)
    b = a + rng.normal(scale=0.5, size=50)
    np.testing.assert_allclose(M.rankdata(a), sp_rankdata(a))
    assert M.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert M.spearman(a, a) == pytest.approx(1.0)
    assert M.spearman(a, -a) == pytest.approx(-1.0)
    assert M.spearman(np.ones(5), np.ones(5)) == 1.0
    assert M.spearman(np.ones(5), np.arange(5)) == 0.0


def test_stable_loss_and_scaled_confidence():
    z = np.array([[50.0, 0.0, -3.0], [0.0, 1.0, 2.0]])
    y = np.array([0, 2])
    p = M.softmax(z)
    # direct formulas where float64 is still exact enough
    np.testing.assert_allclose(M.cross_entropy(z, y)[1], -np.log(p[1, 2]))
    np.testing.assert_allclose(M.scaled_confidence(z, y)[1], np.log(p[1, 2] / (1 - p[1, 2])))
    # where softmax rounds to exactly 1.0 the logit form still orders examples
    assert p[0, 0] == 1.0
    assert M.scaled_confidence(z, y)[0] == pytest.approx(50 - np.log(1 + np.exp(-3)))
    np.testing.assert_allclose(M.margin(z, y), [50.0, 1.0])
