"""Attack metrics: ROC curve, AUC, attack advantage, TPR at a fixed FPR, rank correlation.

All functions are plain NumPy so they can be checked against scikit-learn/SciPy
in the tests. Scores follow one convention: a *higher* score means "more likely
a member" (or "more likely positive").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseal.runtime.errors import ConfigError

__all__ = [
    "RocCurve", "roc_curve", "auc", "advantage", "tpr_at_fpr", "rankdata", "spearman", "softmax", "margin",
    "cross_entropy", "scaled_confidence",
]


@dataclass(frozen=True, kw_only=True)
class RocCurve:
    """False/true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    n_pos: int
    n_neg: int


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ConfigError(f"scores ({scores.shape}) and labels ({labels.shape}) must have the same length")
    if labels.all() or not labels.any():
        raise ConfigError("ROC needs both positives (members) and negatives (non-members); got only one class")
    if not np.isfinite(scores).all():
        raise ConfigError("attack scores contain NaN or inf; clip the model outputs before scoring")
    return scores, labels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """ROC curve with ties handled as one threshold (same points as sklearn's ``roc_curve``)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.where(np.diff(s))[0]
    idx = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[idx]
    fps = (idx + 1) - tps
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return RocCurve(fpr=fpr, tpr=tpr, n_pos=n_pos, n_neg=n_neg)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a random member outscores a random non-member)."""
    c = roc_curve(scores, labels)
    return float(np.trapezoid(c.tpr, c.fpr))


def advantage(scores: np.ndarray, labels: np.ndarray) -> float:
    """Membership advantage max(TPR - FPR) over thresholds (Yeom et al. 2018)."""
    c = roc_curve(scores, labels)
    return float(np.max(c.tpr - c.fpr))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """Highest TPR reachable with a threshold whose FPR is at most ``fpr``.

    With ``n_neg`` non-members the smallest non-zero FPR is ``1/n_neg``; below it
    this is the TPR at zero false positives (the strictest honest reading).
    """
    if not 0.0 <= fpr <= 1.0:
        raise ConfigError(f"fpr must be in [0, 1], got {fpr}")
    c = roc_curve(scores, labels)
    ok = c.fpr <= fpr + 1e-12
    return float(c.tpr[ok].max())


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (SciPy's ``rankdata(method='average')``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    starts = np.r_[0, np.where(np.diff(xs))[0] + 1]
    ends = np.r_[starts[1:], x.size]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 1.0 when both are constant, 0.0 when only one is."""
    ra, rb = rankdata(a), rankdata(b)
    if ra.shape != rb.shape:
        raise ConfigError(f"spearman needs equal lengths, got {ra.size} and {rb.size}")
    sa, sb = ra.std(), rb.std()
    if sa == 0 and sb == 0:
        return 1.0
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logit of the label minus the largest other logit: > 0 iff the label wins."""
    z = np.asarray(logits, dtype=np.float64)
    idx = np.arange(z.shape[0])
    own = z[idx, labels]
    other = z.copy()
    other[idx, labels] = -np.inf
    return own - other.max(axis=1)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy computed from logits (stable where softmax rounds to 1.0)."""
    z = np.asarray(logits, dtype=np.float64)
    return _logsumexp(z) - z[np.arange(z.shape[0]), labels]


def scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence log(p_y / (1 - p_y)), computed stably from logits."""
    z = np.asarray(logits, dtype=np.float64)
    idx = np.arange(z.shape[0])
    own = z[idx, labels]
    other = z.copy()
    other[idx, labels] = -np.inf
    return own - _logsumexp(other)
