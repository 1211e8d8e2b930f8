import numpy as np
import pytest

from edgeseal.converters.metrics import classification_report, measure_latency


def test_classification_report_numbers():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    r = classification_report(y, p, num_classes=3)
    assert r.accuracy == pytest.approx(4 / 6) and r.n == 6
    c0, c1, c2 = r.per_class
    assert (c0.precision, c0.recall, c0.f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (c1.precision, c1.recall) == pytest.approx((2 / 3, 1.0)) and c1.f1 == pytest.approx(0.8)
    assert (c2.precision, c2.recall) == pytest.approx((1.0, 0.5))
    assert r.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert r.to_dict()["per_class"][1]["support"] == 2


def test_latency_counts_runs():
    lat = measure_latency(lambda: sum(range(1000)), runs=50, warmup=5)
    assert lat.runs == 50 and 0 < lat.p50_ms <= lat.p95_ms
