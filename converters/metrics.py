"""Classification metrics and latency measurement, torch-free (numpy only)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ClassMetrics", "ClassificationReport", "classification_report", "Latency", "measure_latency"]


@dataclasses.dataclass(frozen=True)
class ClassMetrics:
    label: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, macro F1 and per-class precision/recall/F1 of one model on one labelled set."""

    accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "n": self.n,
            "per_class": [dataclasses.asdict(c) for c in self.per_class],
        }


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> ClassificationReport:
    """Per-class precision/recall/F1 (0 where undefined) and overall accuracy from label vectors."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    k = int(num_classes if num_classes is not None else max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    per_class = []
    for c in range(k):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class.append(ClassMetrics(c, p, r, f1, tp + fn))
    acc = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    macro = float(np.mean([c.f1 for c in per_class])) if per_class else 0.0
    return ClassificationReport(acc, macro, tuple(per_class), int(len(y_true)))


@dataclasses.dataclass(frozen=True)
class Latency:
    """Wall-clock latency of one call, in milliseconds."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure_latency(fn: Callable[[], Any], *, runs: int = 200, warmup: int = 20) -> Latency:
    """Time ``fn()`` ``runs`` times after ``warmup`` untimed calls (perf_counter, one thread of control)."""
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    times *= 1e3
    return Latency(float(np.percentile(times, 50)), float(np.percentile(times, 95)), float(times.mean()), runs)
