"""Activation ranges read back from a QDQ model, and the uint8 rounding AdaRound reproduces from them."""

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeseal.converters.adaround import fake_quant_uint8, uint8_params
from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
from edgeseal.converters.ranges import activation_ranges

from cnn_graphs import conv_block, run


def _outputs(model: bytes, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    proto = onnx.load_from_string(model)
    for n in names:
        proto.graph.output.append(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, {"x": x})))


def test_ranges_are_the_calibrated_min_max_and_fake_quant_matches_onnx_runtime():
    rng = np.random.default_rng(3)
    model = conv_block(rng, act="Relu", channels=6, spread=1.0)
    calib = (rng.normal(size=(16, 3, 12, 12)) + 0.3).astype(np.float32)
    int8 = quantize_onnx_static(model, calib, OnnxStaticConfig(preprocess=False))
    ranges = activation_ranges(int8)
    assert {"x", "a1", "a2"} <= set(ranges)  # the input and both activations (the Relus are folded into Q)
    # MinMax calibration: the grid spans the calibration data's own extremes (widened to hold 0), to
    # within the rounding of the zero point
    float_vals = _outputs(model, ["a1", "a2"], calib) | {"x": calib}
    for name in ("x", "a1", "a2"):
        lo, hi = ranges[name]
        want_lo, want_hi = min(float(float_vals[name].min()), 0.0), max(float(float_vals[name].max()), 0.0)
        step = (want_hi - want_lo) / 255
        assert abs(lo - want_lo) <= step and abs(hi - want_hi) <= step, (name, (lo, hi), (want_lo, want_hi))
        scale, zp = uint8_params(*ranges[name])
        q = numpy_helper.to_array(next(i for i in onnx.load_from_string(int8).graph.initializer
                                       if i.name == f"{name}_scale"))
        assert np.isclose(scale, float(q), rtol=1e-6)
    # the torch fake quantization equals ONNX Runtime's QuantizeLinear -> DequantizeLinear on that tensor
    import torch

    held_out = (rng.normal(size=(4, 3, 12, 12)) * 1.5).astype(np.float32)  # values outside the range too
    dq = _outputs(int8, ["x_DequantizeLinear_Output"], held_out)["x_DequantizeLinear_Output"]
    ours = fake_quant_uint8(torch.from_numpy(held_out), *ranges["x"]).numpy()
    np.testing.assert_allclose(ours, dq, atol=1e-6)
    assert not np.allclose(dq, held_out)  # the check is not vacuous: the rounding changed the values


def test_uint8_params_hold_zero_and_match_onnx_runtime_formula():
    assert uint8_params(0.0, 6.0) == (np.float32(6.0 / 255), 0)
    scale, zp = uint8_params(-1.0, 3.0)
    assert np.isclose(scale, 4.0 / 255) and zp == round(1.0 / scale)
    assert uint8_params(0.5, 2.0)[1] == 0  # a range above zero is widened down to 0
    assert uint8_params(-2.0, -0.5)[1] == 255


def test_set_activation_ranges_round_trips_and_onnx_runtime_clips_there():
    import pytest

    from edgeseal.converters.ranges import set_activation_ranges
    from edgeseal.runtime.errors import ConfigError

    rng = np.random.default_rng(4)
    model = conv_block(rng, act="Relu", channels=6, spread=1.0)
    calib = (rng.normal(size=(16, 3, 12, 12)) + 0.3).astype(np.float32)
    int8 = quantize_onnx_static(model, calib, OnnxStaticConfig(preprocess=False))
    hi = 0.5 * activation_ranges(int8)["a1"][1]
    changed = set_activation_ranges(int8, {"a1": (0.0, hi)})
    lo2, hi2 = activation_ranges(changed)["a1"]
    assert lo2 == 0.0 and np.isclose(hi2, hi, rtol=1e-6)
    a1 = _outputs(changed, ["a1_DequantizeLinear_Output"], calib)["a1_DequantizeLinear_Output"]
    assert np.isclose(a1.max(), hi, rtol=1e-6)  # values above the new range saturate at its top
    assert not np.allclose(run(changed, calib), run(int8, calib))
    with pytest.raises(ConfigError, match="no activation QuantizeLinear reads"):
        set_activation_ranges(int8, {"nope": (0.0, 1.0)})
