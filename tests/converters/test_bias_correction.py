import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeseal.converters.bias_correction import expected_output_shift, channel_means, correct_bias
from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
from edgeseal.runtime.errors import ConfigError

from cnn_graphs import conv_block, run


def test_expected_shift_matches_a_direct_convolution_of_the_weight_error():
    # away from padded borders, E[(W_q - W) * x] per output channel = sum over taps of delta * E[x_channel]
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(6, 1, 3, 3))  # a depthwise layer's weight error
    x = rng.normal(loc=rng.uniform(-2, 2, size=(1, 6, 1, 1)), size=(64, 6, 10, 10))
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], group=6, kernel_shape=[3, 3])
    got = expected_output_shift(node, delta, x.mean(axis=(0, 2, 3)))
    # direct: valid convolution of x with delta, mean over samples and positions
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # (64, 6, 8, 8, 3, 3)
    direct = np.einsum("ncijkl,ckl->nc", windows, delta[:, 0]) / 64.0
    np.testing.assert_allclose(got, direct.mean(axis=0), rtol=0.05, atol=0.02)


def test_bias_correction_removes_most_of_the_int8_mean_shift():
    rng = np.random.default_rng(3)
    model = conv_block(rng, act="Relu", spread=3.0, bias_shift=2.0)
    calib = (rng.normal(size=(64, 3, 12, 12)) + 1.5).astype(np.float32)
    cfg = OnnxStaticConfig(preprocess=False)
    corrected, report = correct_bias(model, calib, quantize=lambda m: quantize_onnx_static(m, calib, cfg))
    assert set(report.layers) == {"conv1", "dw", "pw"}
    before, after = report.residual[0], report.final_residual
    assert after < 0.9 * before  # the weights' part of the shift; activation rounding adds its own
    # the residual is measured on the final int8 model itself (channel_means is checked against a plain run below)
    assert report.quantized != quantize_onnx_static(model, calib, cfg)
    # only biases changed
    w0 = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    w1 = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(corrected).graph.initializer}
    for name in ("w1", "w2", "w3"):
        np.testing.assert_array_equal(w0[name], w1[name])
    assert any(not np.array_equal(w0[b], w1[b]) for b in ("b1", "b2", "b3"))


def test_channel_means_are_per_channel_means():
    rng = np.random.default_rng(4)
    model = conv_block(rng)
    x = rng.normal(size=(16, 3, 12, 12)).astype(np.float32)
    got = channel_means(model, ["y"], [{"x": x[:8]}, {"x": x[8:]}])["y"]
    np.testing.assert_allclose(got, run(model, x).mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)


def test_unknown_layers_are_refused():
    rng = np.random.default_rng(5)
    model = conv_block(rng)
    with pytest.raises(ConfigError, match="not Conv/Gemm"):
        correct_bias(model, rng.normal(size=(8, 3, 12, 12)).astype(np.float32), quantize=lambda m: m, layers=["nope"])


def test_a_second_round_measures_again_on_the_corrected_model():
    rng = np.random.default_rng(6)
    model = conv_block(rng, act="Relu", spread=3.0, bias_shift=2.0)
    calib = (rng.normal(size=(32, 3, 12, 12)) + 1.5).astype(np.float32)
    cfg = OnnxStaticConfig(preprocess=False)
    _, one = correct_bias(model, calib, quantize=lambda m: quantize_onnx_static(m, calib, cfg))
    _, two = correct_bias(model, calib, quantize=lambda m: quantize_onnx_static(m, calib, cfg), rounds=2)
    assert len(two.residual) == 2 and two.residual[0] == pytest.approx(one.residual[0])
    assert two.residual[1] == pytest.approx(one.final_residual)  # round 2 starts where round 1 ended
    with pytest.raises(ConfigError, match="rounds"):
        correct_bias(model, calib, quantize=lambda m: m, rounds=0)
