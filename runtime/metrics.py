"""Classification metrics, one implementation for the host and the device (numpy only).

Accuracy and per-class precision, recall and F1 from label vectors; the macro averages are over
the classes that occur in the labels or the predictions (scikit-learn's default: a class that
appears in neither has no defined precision or recall and does not count). ``compress`` reports
(``edgeseal.converters.metrics``), ``verify`` on the host and the device-side evaluation
(``edgeseal.runtime.evaluate``) all compute their numbers here. Fidelity without labels (top-1
agreement, top-k overlap, SQNR, cosine) is :mod:`edgeseal.runtime.fidelity`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["ClassMetrics", "ClassificationReport", "classification_report", "classification_metrics"]


@dataclasses.dataclass(frozen=True)
class ClassMetrics:
    label: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, macro precision/recall/F1 and per-class numbers of one model on one labelled set."""

    accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    n: int
    macro_precision: float = 0.0
    macro_recall: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "n": self.n,
            "per_class": [dataclasses.asdict(c) for c in self.per_class],
        }

    def to_metrics(self) -> dict[str, Any]:
        """The flat form of the device evaluation's result (``runtime.evaluate``, ``verify``)."""
        return {"n": self.n, "accuracy": self.accuracy, "precision_macro": self.macro_precision,
                "recall_macro": self.macro_recall, "f1_macro": self.macro_f1}


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> ClassificationReport:
    """Per-class precision/recall/F1 (0 where a class was never predicted or never present) and accuracy.

    ``num_classes``: the model's class count; a label or prediction outside ``0..num_classes-1`` is a ConfigError.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if len(y_true) != len(y_pred):
        raise ConfigError(f"{len(y_true)} labels but {len(y_pred)} predictions; give one prediction per label")
    classes = np.union1d(np.unique(y_true), np.unique(y_pred))
    if num_classes is not None and len(classes) and (classes[0] < 0 or classes[-1] >= num_classes):
        raise ConfigError(f"labels/predictions range over {int(classes[0])}..{int(classes[-1])}, outside the "
                          f"model's {num_classes} classes 0..{num_classes - 1}; check the labels of the data set")
    per_class = []
    for c in classes:
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class.append(ClassMetrics(int(c), p, r, f1, tp + fn))
    acc = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0

    def macro(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    return ClassificationReport(acc, macro([c.f1 for c in per_class]), tuple(per_class), int(len(y_true)),
                                macro([c.precision for c in per_class]), macro([c.recall for c in per_class]))


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy and macro precision/recall/F1 of ``argmax(scores, -1)`` against integer labels (a flat dict)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    pred = scores.reshape(len(labels), -1).argmax(axis=1)
    return classification_report(labels, pred).to_metrics()
