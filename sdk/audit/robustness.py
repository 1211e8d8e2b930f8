"""Adversarial robustness: white-box FGSM/PGD on the fp32 reference, transferred to every
artifact, and a black-box score-based attack run on the artifact itself.

FGSM and PGD are ``edgeseal.converters.adversarial``'s (one implementation for the audit and
the compress recipe's adversarial stages); ART's attacks for user artifacts are in ``blackbox``.

All attacks are L-infinity bounded. ``lo``/``hi`` clip to the valid input range
(pixels) when the data has one. Robust accuracy = fraction of examples still
classified correctly (as their true label) after the attack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseal.converters.adversarial import fgsm, pgd

from . import metrics as M
from .artifacts import Artifact

__all__ = ["fgsm", "pgd", "random_search_attack", "robust_accuracy", "RobustCurve"]


@dataclass(frozen=True, kw_only=True)
class RobustCurve:
    attack: str
    epsilons: list[float]
    accuracy: list[float]

    def to_dict(self) -> dict:
        return {"attack": self.attack, "epsilons": self.epsilons, "accuracy": self.accuracy}


def random_search_attack(artifact: Artifact, x: np.ndarray, y: np.ndarray, eps: float, *, queries: int,
                         lo=None, hi=None, seed: int = 0) -> np.ndarray:
    """Black-box L-infinity attack that only reads the artifact's scores.

    Square-attack-style random search (Andriushchenko et al. 2020) on the vertices of
    the eps-box: start from a random sign pattern, then each step flips the sign of a
    random block of features (the block shrinks over time) and keeps the flip when the
    margin ``z_y - max_{j != y} z_j`` goes down. The whole batch is attacked in
    parallel: one ``predict`` call per step, ``queries`` steps, so each example costs
    ``queries + 1`` model queries. Stops improving an example once it is misclassified.
    """
    x = np.asarray(x, np.float64)
    if eps == 0:
        return x.astype(np.float32)
    rng = np.random.default_rng(seed)
    n, d = x.shape

    def project(delta):
        xa = x + delta
        if lo is not None:
            xa = np.clip(xa, lo, hi)
        return xa

    delta = eps * rng.choice([-1.0, 1.0], size=(n, d))
    best = M.margin(artifact.predict(project(delta)), y)
    for t in range(queries):
        frac = max(1.0 / d, 0.1 * (1 - t / queries) ** 2)  # share of features flipped, annealed to one
        k = max(1, int(round(frac * d)))
        active = best > 0
        if not active.any():
            break
        flip = np.zeros((n, d), bool)
        cols = np.argsort(rng.random((n, d)), axis=1)[:, :k]
        np.put_along_axis(flip, cols, True, axis=1)
        flip &= active[:, None]
        cand = np.where(flip, -delta, delta)
        m = M.margin(artifact.predict(project(cand)), y)
        better = m < best
        delta[better] = cand[better]
        best[better] = m[better]
    return project(delta).astype(np.float32)


def robust_accuracy(artifact: Artifact, x_adv: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(artifact.predict(x_adv), axis=1) == y))
