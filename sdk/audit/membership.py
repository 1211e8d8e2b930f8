"""Membership inference: does the artifact reveal which records it was trained on?

Attacks (all black-box: they only call ``artifact.predict``):

* ``loss``        threshold on the per-example cross-entropy (Yeom et al. 2018);
* ``confidence``  threshold on the logit-scaled confidence of the true class;
* ``lira``        the online Likelihood-Ratio Attack (Carlini et al. 2022) with
  reference ("shadow") models the attacker trains on random halves of the data
  pool, Gaussian fits with a fixed (pooled) variance as the paper recommends for
  few reference models;
* ``lira_offline`` the same with only the OUT reference models (one-sided test).

Scores: higher means "member". Metrics per attack: AUC, advantage, TPR at 1% and
0.1% FPR (with the FPR resolution 1/n_nonmembers recorded next to them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError

from . import metrics as M

__all__ = ["MiaAttack", "MiaResult", "ReferenceModels", "train_reference_models", "attack_scores",
           "evaluate_scores", "combine_scores"]


class MiaAttack(str, Enum):
    LOSS = "loss"
    CONFIDENCE = "confidence"
    LIRA = "lira"
    LIRA_OFFLINE = "lira_offline"


@dataclass(frozen=True, kw_only=True)
class MiaResult:
    attack: str
    auc: float
    advantage: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    fpr_resolution: float
    roc_fpr: list[float] = field(repr=False)
    roc_tpr: list[float] = field(repr=False)

    def to_dict(self, *, with_roc: bool = True) -> dict:
        d = {"attack": self.attack, "auc": self.auc, "advantage": self.advantage,
             "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr, "tpr_at_0.1pct_fpr": self.tpr_at_01pct_fpr,
             "fpr_resolution": self.fpr_resolution}
        if with_roc:
            d["roc"] = {"fpr": self.roc_fpr, "tpr": self.roc_tpr}
        return d


@dataclass(frozen=True, kw_only=True)
class ReferenceModels:
    """The attacker's reference models: which pool records each saw, and its scaled confidences."""

    keep: np.ndarray  # bool (K, n): reference k trained on record i
    phi: np.ndarray  # float (K, n): logit-scaled confidence of reference k on record i
    seed: int

    @property
    def count(self) -> int:
        return int(self.keep.shape[0])


def train_reference_models(x: np.ndarray, y: np.ndarray, *, count: int, seed: int, train_fn,
                           progress=None) -> ReferenceModels:
    """Train ``count`` reference models, each on a random half of the pool ``(x, y)``.

    ``train_fn(x_train, y_train, seed) -> predict(x) -> logits`` is the attacker's
    copy of the training recipe. Records are assigned so each is IN for exactly
    half of the models (balanced, as in the LiRA code release).
    """
    if count < 2 or count % 2:
        raise ConfigError(f"reference model count must be an even number >= 2, got {count}")
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    # Balanced inclusion: for each record, a random half of the K models include it.
    order = np.argsort(rng.random((count, n)), axis=0)
    keep = order < count // 2
    phi = np.empty((count, n), dtype=np.float64)
    for k in range(count):
        predict = train_fn(x[keep[k]], y[keep[k]], seed + 1000 + k)
        phi[k] = M.scaled_confidence(predict(x), y)
        if progress is not None:
            progress()
    return ReferenceModels(keep=keep, phi=phi, seed=seed)


def _norm_logpdf(x: np.ndarray, mu: np.ndarray, sd: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)


def _lira(phi_t: np.ndarray, ref: ReferenceModels, *, online: bool) -> np.ndarray:
    keep, phi = ref.keep, ref.phi
    n_in, n_out = keep.sum(0), (~keep).sum(0)
    if (n_out == 0).any() or (online and (n_in == 0).any()):
        raise ConfigError("every record needs IN and OUT reference models; use more reference models")
    mu_in = np.where(keep, phi, 0).sum(0) / np.maximum(n_in, 1)
    mu_out = np.where(~keep, phi, 0).sum(0) / n_out
    # Fixed (pooled) variance: robust with few reference models.
    sd_in = float(np.sqrt(np.sum(np.where(keep, (phi - mu_in) ** 2, 0)) / max(keep.sum() - 1, 1))) + 1e-6
    sd_out = float(np.sqrt(np.sum(np.where(~keep, (phi - mu_out) ** 2, 0)) / max((~keep).sum() - 1, 1))) + 1e-6
    if online:
        return _norm_logpdf(phi_t, mu_in, sd_in) - _norm_logpdf(phi_t, mu_out, sd_out)
    return (phi_t - mu_out) / sd_out  # monotone in the one-sided p-value


def attack_scores(attack: MiaAttack | str, logits: np.ndarray, y: np.ndarray,
                  ref: ReferenceModels | None = None) -> np.ndarray:
    """Membership scores (higher = member) of every pool record from the artifact's logits."""
    attack = MiaAttack(attack)
    if attack is MiaAttack.LOSS:
        return -M.cross_entropy(logits, y)
    phi = M.scaled_confidence(logits, y)
    if attack is MiaAttack.CONFIDENCE:
        return phi
    if ref is None:
        raise ConfigError(f"the {attack.value} attack needs reference models")
    return _lira(phi, ref, online=attack is MiaAttack.LIRA)


def evaluate_scores(attack: str, scores: np.ndarray, is_member: np.ndarray, *, roc_points: int = 100) -> MiaResult:
    c = M.roc_curve(scores, is_member)
    # Thin the curve for the report, keeping the low-FPR end where it matters (log-spaced grid).
    grid = np.unique(np.r_[0.0, np.geomspace(1e-3, 1.0, roc_points)])
    tpr_grid = np.array([c.tpr[c.fpr <= f + 1e-12].max() for f in grid])
    return MiaResult(
        attack=attack,
        auc=M.auc(scores, is_member),
        advantage=M.advantage(scores, is_member),
        tpr_at_1pct_fpr=M.tpr_at_fpr(scores, is_member, 0.01),
        tpr_at_01pct_fpr=M.tpr_at_fpr(scores, is_member, 0.001),
        fpr_resolution=1.0 / c.n_neg,
        roc_fpr=[round(float(v), 6) for v in grid],
        roc_tpr=[round(float(v), 6) for v in tpr_grid],
    )


def combine_scores(score_sets: Sequence[np.ndarray]) -> np.ndarray:
    """An attacker holding several variants of one model sums their standardized scores.

    For LiRA scores (log-likelihood ratios) the sum is the likelihood ratio of the
    joint observation under an independence assumption; each set is standardized
    first so that no variant dominates by scale alone.
    """
    if not score_sets:
        raise ConfigError("combine_scores needs at least one score set")
    z = [(s - s.mean()) / (s.std() + 1e-12) for s in map(np.asarray, score_sets)]
    return np.sum(z, axis=0)
