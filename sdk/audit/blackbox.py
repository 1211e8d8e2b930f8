"""Black-box evasion attacks from the Adversarial Robustness Toolbox (ART) on any artifact's
``predict`` — a sealed package as it ships, an ONNX or TFLite file.

* ``square`` — ART's ``SquareAttack`` (Andriushchenko et al. 2020): score-based, L-inf
  bounded by ``eps``; robust accuracy at ``eps`` is the accuracy on its examples. ART runs it
  on images only (``(N, C, H, W)`` or ``(N, H, W, C)``); for feature rows and sequences, where
  ART has no square attack, ``edgeseal.audit.robustness.random_search_attack`` (the same
  random search over the eps-box vertices, on flat features) stands in.
* ``hopskipjump`` / ``boundary`` — ART's ``HopSkipJump`` (Chen et al. 2020) and
  ``BoundaryAttack`` (Brendel et al. 2018): decision-based (labels only), they search the
  *smallest* L-inf perturbation that flips the label. One run serves every epsilon: an
  example counts as robust at ``eps`` when it is classified correctly and the attack found
  no adversarial example within ``eps``.

Inputs keep their shape (images go to ART as ``(N, C, H, W)``, so the square attack works
on image squares). ART draws from NumPy's global generator; it is seeded per call.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = ["ArtAttack", "DecisionResult", "art_square_applies", "square_attack", "decision_attack"]


class ArtAttack(str, enum.Enum):
    SQUARE = "square"
    HOPSKIPJUMP = "hopskipjump"
    BOUNDARY = "boundary"


def _art() -> Any:
    try:
        import art.attacks.evasion as evasion
        from art.estimators import classification
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UnsupportedError("black-box attacks use the Adversarial Robustness Toolbox: "
                               "pip install 'edgeseal[privacy]'", reason=str(exc)) from None
    return evasion, classification


def art_square_applies(shape: tuple[int, ...]) -> bool:
    """ART's square attack needs images: three dimensions per sample."""
    return len(shape) == 3


def _channels_first(shape: tuple[int, ...]) -> bool:
    return not (len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4))


def _estimator(artifact: Any, shape: tuple[int, ...], n_classes: int, lo: float | None, hi: float | None,
               scores: bool) -> Any:
    _, classification = _art()

    def predict(z: np.ndarray) -> np.ndarray:
        return artifact.predict(np.asarray(z, np.float32).reshape(len(z), *shape))

    clip = None if lo is None else (float(lo), float(hi))
    if scores:
        return classification.BlackBoxClassifierNeuralNetwork(predict, input_shape=shape, nb_classes=n_classes,
                                                              clip_values=clip, channels_first=_channels_first(shape))
    return classification.BlackBoxClassifier(predict, input_shape=shape, nb_classes=n_classes, clip_values=clip)


def square_attack(artifact: Any, x: np.ndarray, y: np.ndarray, eps: float, *, queries: int, n_classes: int,
                  lo: float | None = None, hi: float | None = None, seed: int = 0) -> np.ndarray:
    """ART's square attack within the L-inf ball of ``eps``; ``queries`` iterations. Returns ``x``'s shape."""
    evasion, _ = _art()
    x = np.asarray(x, np.float32)
    if eps == 0:
        return x.copy()
    if not art_square_applies(x.shape[1:]):
        raise UnsupportedError(f"ART's square attack runs on images (C, H, W); these samples are {x.shape[1:]}: use "
                               "edgeseal.audit.robustness.random_search_attack", reason="not image data")
    est = _estimator(artifact, x.shape[1:], n_classes, lo, hi, scores=True)
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attack = evasion.SquareAttack(est, norm=np.inf, eps=float(eps), max_iter=int(queries), verbose=False,
                                      batch_size=max(1, len(x)))
        return np.asarray(attack.generate(x, y=np.asarray(y, np.int64)), np.float32)


@dataclass(frozen=True, kw_only=True)
class DecisionResult:
    """One decision-based run: per example, whether it starts correct and the L-inf size of the
    adversarial example found (inf when none)."""

    attack: str
    correct: np.ndarray
    linf: np.ndarray

    def robust_accuracy(self, eps: float) -> float:
        return float(np.mean(self.correct & (self.linf > eps)))


def decision_attack(artifact: Any, x: np.ndarray, y: np.ndarray, *, attack: ArtAttack | str, queries: int,
                    n_classes: int, lo: float | None = None, hi: float | None = None, seed: int = 0) -> DecisionResult:
    """HopSkipJump or Boundary attack (labels only); ``queries`` bounds the model calls per example."""
    evasion, _ = _art()
    attack = ArtAttack(attack)
    if attack is ArtAttack.SQUARE:
        raise ConfigError("the square attack is score-based and eps-bounded: use square_attack")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    est = _estimator(artifact, x.shape[1:], n_classes, lo, hi, scores=False)
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if attack is ArtAttack.HOPSKIPJUMP:
            iters = max(1, queries // 40)
            a = evasion.HopSkipJump(est, norm=np.inf, max_iter=iters, max_eval=max(10, queries // (2 * iters)),
                                    init_eval=10, init_size=20, verbose=False)
        else:
            a = evasion.BoundaryAttack(est, targeted=False, max_iter=max(1, queries), num_trial=5, sample_size=5,
                                       init_size=20, verbose=False)
        xa = np.asarray(a.generate(x), np.float32)
    pred = artifact.predict(xa).argmax(-1)
    correct = artifact.predict(x).argmax(-1) == y
    linf = np.abs((xa - x).reshape(len(x), -1)).max(axis=1)
    linf = np.where(pred != y, linf, np.inf)  # no adversarial example found: robust at every eps
    linf = np.where(correct, linf, 0.0)
    return DecisionResult(attack=attack.value, correct=correct, linf=linf)
