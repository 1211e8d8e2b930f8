import math

import onnx
import pytest

from edgeseal.converters.localize import (
    layer_errors,
    quantize_within_budget,
    sqnr_db,
    tflite_within_budget,
)
from edgeseal.converters.quantize import OnnxStaticConfig, preprocess_onnx, quantize_onnx_static
from edgeseal.runtime.errors import ConfigError


def test_sqnr():
    import numpy as np

    a = np.array([3.0, 4.0])
    assert sqnr_db(a, a) == math.inf
    assert sqnr_db(a, a + np.array([0.3, 0.4])) == pytest.approx(20.0)  # noise 1/10 of the amplitude


def test_layer_errors_side_by_side(exported, digits):
    fp32 = preprocess_onnx(exported["onnx"].model)
    q = quantize_onnx_static(fp32, digits.x_train, OnnxStaticConfig(preprocess=False))
    errors = layer_errors(fp32, q, digits.x_val, samples=16)
    by_node = {e.node: e for e in errors}
    # every weight layer is found under its float-graph name, matched to the tensor it produces
    for node in ("node_conv2d", "node_conv2d_1", "node_conv2d_2", "node_linear", "node_linear_1"):
        assert by_node[node].quantized
        assert 25.0 < by_node[node].sqnr_db < 70.0  # int8: roughly 6 dB per bit, minus accumulation
    assert by_node["node_conv2d"].output == "relu"  # Relu folded into the conv's quantized range
    assert by_node["node_linear_1"].output == "output"
    assert errors == sorted(errors, key=lambda e: -e.added_noise)
    d = errors[0].to_dict()
    assert set(d) == {"node", "op_type", "output", "sqnr_db", "added_noise", "quantized"}


def _quantized_convs(model: bytes) -> int:
    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    return sum(1 for n in g.node if n.op_type == "Conv" and f"{n.input[1]}" not in inits)


def test_budget_loop_keeps_worst_layers_in_float(exported, digits):
    # a score that loses 5 points per quantized conv: all-int8 = 85, budget 6 -> two convs must go back to float
    score = lambda m: 100.0 - 5.0 * _quantized_convs(m)  # noqa: E731
    q, report = quantize_within_budget(
        exported["onnx"].model, OnnxStaticConfig(), score=score, max_drop=6.0,
        calibration=digits.x_train[:64], show_progress=False, latency_input=digits.x_test[:1],
    )
    assert report.float_score == 100.0 and report.steps[0].score == 85.0
    assert report.met and report.final_score >= 94.0
    assert sum(1 for n in report.excluded if n.startswith("node_conv2d")) >= 2
    assert [s.excluded for s in report.steps][1:] == [report.excluded[: i + 1] for i in range(len(report.steps) - 1)]
    assert report.int8_size < report.final_size < report.float_size  # float layers cost size
    assert report.float_latency.p50_ms > 0 and report.final_latency.runs == 100
    d = report.to_dict()
    assert d["excluded"] == list(report.excluded) and d["size_bytes"]["final"] == len(q)
    assert "excluded from quantization by the budget loop: node_" in report.summary()


def test_budget_not_met_is_reported(exported, digits):
    q, report = quantize_within_budget(
        exported["onnx"].model, OnnxStaticConfig(), score=lambda m: 0.0 if b"QuantizeLinear" in m else 1.0,
        max_drop=0.5, calibration=digits.x_train[:32], max_excluded=2, show_progress=False,
    )
    assert not report.met and len(report.steps) == 3 and len(report.steps[-1].excluded) == 2
    # every attempt drops the same: the one returned is the first (fewest layers in float), not the last
    assert report.chosen == 0 and report.excluded == () and len(q) == report.steps[0].size_bytes
    with pytest.raises(ConfigError, match="max_drop"):
        quantize_within_budget(exported["onnx"].model, OnnxStaticConfig(), score=len, max_drop=-1)


def test_tflite_budget_met_without_exclusions(exported, digits, acc):
    score = lambda m: acc(m, digits.x_val, digits.y_val)  # noqa: E731
    q, report = tflite_within_budget(exported["tflite"].model, digits.x_train, score=score, max_drop=0.5, show_progress=False)
    assert report.met and report.excluded == () and len(report.steps) == 1
    assert report.final_size <= 0.30 * report.float_size
