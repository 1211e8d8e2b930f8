"""Classification metrics and latency measurement, torch-free (numpy only).

Both live in the runtime, so that the host and the device compute them one way: the metrics in
``edgeseal.runtime.metrics``, latency in ``edgeseal.runtime.timing``; this module re-exports them
for the converters and adds :func:`measure_latency` for one call on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeseal.runtime.metrics import ClassificationReport, ClassMetrics, classification_report
from edgeseal.runtime.timing import Latency, interleaved

__all__ = ["ClassMetrics", "ClassificationReport", "classification_report", "Latency", "measure_latency"]


def measure_latency(fn: Callable[[], Any], *, runs: int = 200, warmup: int = 20) -> Latency:
    """Latency of one call on its own: ``fn()`` timed ``runs`` times after ``warmup`` untimed calls, by the
    one harness (``edgeseal.runtime.timing``). To compare models, time them together with
    ``edgeseal.converters.latency.time_side_by_side``: separate runs do not compare."""
    return interleaved({"call": fn}, rounds=runs, calls_per_round=1, warmup=warmup, settle=0).latency["call"]
