"""Fidelity of a compressed classifier to its float original, without labels (numpy only).

When no labelled data is at hand, the float model's own answers are the reference:

* **top-1 agreement** — the fraction of inputs whose arg-max class is the same;
* **top-k overlap** — the mean fraction of the float model's top-k classes that the compressed
  model also ranks in its top k;
* **logit SQNR** — ``10 log10(sum ref² / sum (ref - test)²)`` over all logits, in dB;
* **cosine** — per-sample cosine similarity of the logit vectors (mean and minimum).

A :class:`FidelityBudget` gates on them; ``FidelityBudget.check`` returns the failures in words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["Fidelity", "FidelityBudget", "fidelity", "sqnr_db", "top_k_overlap"]


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB; +inf when identical, -inf for a zero reference."""
    ref = np.asarray(ref, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if ref.shape != test.shape:
        raise ConfigError(f"SQNR needs equal shapes, got {ref.shape} and {test.shape}")
    noise = float(np.sum((ref - test) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def top_k_overlap(ref: np.ndarray, test: np.ndarray, k: int = 5) -> float:
    """Mean over samples of |top-k(ref) ∩ top-k(test)| / k for (N, classes) logits."""
    ref, test = _logits(ref), _logits(test)
    k = min(k, ref.shape[1])
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    a = np.argpartition(-ref, k - 1, axis=1)[:, :k]
    b = np.argpartition(-test, k - 1, axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())]))


def _logits(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ConfigError(f"expected (samples, classes) outputs, got shape {x.shape}")
    return x.reshape(len(x), -1) if x.ndim > 2 else x


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How closely one model's outputs follow a reference's on the same inputs."""

    n: int
    top1_agreement: float
    top5_overlap: float
    sqnr_db: float
    mean_cosine: float
    min_cosine: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "top1_agreement": self.top1_agreement, "top5_overlap": self.top5_overlap,
                "sqnr_db": None if not math.isfinite(self.sqnr_db) else round(self.sqnr_db, 3),
                "mean_cosine": self.mean_cosine, "min_cosine": self.min_cosine}

    def summary(self) -> str:
        db = "identical" if self.sqnr_db == math.inf else f"{self.sqnr_db:.1f} dB"
        return (f"top-1 agreement {self.top1_agreement:.1%}, top-5 overlap {self.top5_overlap:.1%}, "
                f"logit SQNR {db}, cosine mean {self.mean_cosine:.4f} / min {self.min_cosine:.4f} (n={self.n})")


def fidelity(ref: np.ndarray, test: np.ndarray) -> Fidelity:
    """Top-1 agreement, top-5 overlap, SQNR and cosine of ``test`` against ``ref`` ((N, classes) outputs)."""
    r, t = _logits(ref), _logits(test)
    if r.shape != t.shape:
        raise ConfigError(f"outputs differ in shape: reference {r.shape}, compressed {t.shape}")
    if len(r) == 0:
        raise ConfigError("no samples to compare")
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(t, axis=1)
    cos = np.where(norms == 0, 1.0, np.sum(r * t, axis=1) / np.where(norms == 0, 1.0, norms))
    return Fidelity(
        n=len(r),
        top1_agreement=float(np.mean(r.argmax(1) == t.argmax(1))),
        top5_overlap=top_k_overlap(r, t, 5),
        sqnr_db=sqnr_db(r, t),
        mean_cosine=float(cos.mean()),
        min_cosine=float(cos.min()),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class FidelityBudget:
    """The least fidelity a compressed classifier must keep; ``None`` leaves a measure ungated.

    ``min_agreement`` (top-1 agreement, 0..1), ``min_top5_overlap`` (0..1), ``min_sqnr_db`` (dB),
    ``min_cosine`` (the mean per-sample cosine, -1..1).
    """

    min_agreement: float | None = None
    min_top5_overlap: float | None = None
    min_sqnr_db: float | None = None
    min_cosine: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_agreement", "min_top5_overlap"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}={v} must be a fraction in [0, 1] (e.g. 0.99 for 99 %)")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"min_cosine={self.min_cosine} must be in [-1, 1]")
        if self.min_sqnr_db is not None and not math.isfinite(self.min_sqnr_db):
            raise ConfigError(f"min_sqnr_db={self.min_sqnr_db} must be a finite number of dB")

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def check(self, fid: Fidelity) -> list[str]:
        """The measures below budget, each as a sentence; empty when the budget holds."""
        fails = []
        if self.min_agreement is not None and fid.top1_agreement < self.min_agreement:
            fails.append(f"top-1 agreement {fid.top1_agreement:.2%} < {self.min_agreement:.2%}")
        if self.min_top5_overlap is not None and fid.top5_overlap < self.min_top5_overlap:
            fails.append(f"top-5 overlap {fid.top5_overlap:.2%} < {self.min_top5_overlap:.2%}")
        if self.min_sqnr_db is not None and fid.sqnr_db < self.min_sqnr_db:
            fails.append(f"logit SQNR {fid.sqnr_db:.1f} dB < {self.min_sqnr_db:.1f} dB")
        if self.min_cosine is not None and fid.mean_cosine < self.min_cosine:
            fails.append(f"mean cosine {fid.mean_cosine:.4f} < {self.min_cosine:.4f}")
        return fails
