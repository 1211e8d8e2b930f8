"""AdaRound: weights land on the int8 grid ONNX Runtime uses, the learned rounding beats nearest on the data."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgeseal.converters.adaround import AdaRoundConfig, adaround_onnx, int8_grid
from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
from edgeseal.runtime.errors import ConfigError, UnsupportedError

from cnn_graphs import conv_block, run

WEIGHTS = ("w1", "w2", "w3")


def _inits(model: bytes) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}


def _nearest(model: bytes) -> bytes:
    """The model with each Conv weight rounded to nearest on the per-channel symmetric int8 grid (numpy)."""
    proto = onnx.load_from_string(model)
    for t in proto.graph.initializer:
        if t.name in WEIGHTS:
            w = numpy_helper.to_array(t).astype(np.float64)
            s = np.abs(w).max(axis=(1, 2, 3), keepdims=True) / 127
            t.CopyFrom(numpy_helper.from_array((np.round(w / s) * s).astype(np.float32), t.name))
    return proto.SerializeToString()


@pytest.fixture(scope="module")
def block():
    rng = np.random.default_rng(7)
    model = conv_block(rng, act="Clip", spread=2.0, channels=8)
    calib = (rng.normal(size=(32, 3, 12, 12)) + 0.5).astype(np.float32)
    held_out = (rng.normal(size=(32, 3, 12, 12)) + 0.5).astype(np.float32)
    return model, calib, held_out


def test_no_iterations_is_round_to_nearest(block):
    model, calib, _ = block
    rounded, report = adaround_onnx(model, calib, AdaRoundConfig(iterations=0, bias_correction=False))
    got, want = _inits(rounded), _inits(_nearest(model))
    for name in WEIGHTS:
        np.testing.assert_array_equal(got[name], want[name])
    assert [x.node for x in report.layers] == ["conv1", "dw", "pw"]
    assert all(x.mse_adaround == x.mse_nearest for x in report.layers)


def test_learned_rounding_stays_on_the_grid_that_onnx_runtime_reproduces(block):
    model, calib, _ = block
    rounded, report = adaround_onnx(model, calib, AdaRoundConfig(iterations=200, samples=32))
    before, after = _inits(model), _inits(rounded)
    int8 = quantize_onnx_static(rounded, calib, OnnxStaticConfig(preprocess=False))
    q_inits = _inits(int8)
    flipped = 0
    for name in WEIGHTS:
        w = before[name].astype(np.float64)
        s = int8_grid(w)
        q = after[name] / s
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)  # on the grid
        q = np.round(q)
        assert np.all((q == np.floor(w / s)) | (q == np.ceil(w / s)))  # only ever rounded up or down
        assert np.array_equal(np.abs(q).max(axis=(1, 2, 3)), np.full(len(q), 127.0))  # scale unchanged
        flipped += int(np.sum(q != np.round(w / s)))
        # ONNX Runtime's quantizer computes the same scale and stores exactly these integers
        np.testing.assert_array_equal(q_inits[name + "_quantized"].astype(np.float64), q)
    assert flipped > 0
    assert report.median_error_ratio < 1.0 and "AdaRound on 3 layers" in report.summary()


def test_output_closer_to_float_than_round_to_nearest(block):
    model, calib, held_out = block
    rounded, _ = adaround_onnx(model, calib, AdaRoundConfig(iterations=300, samples=32))
    for x in (calib, held_out):  # on the calibration data, and on inputs it never saw
        ref = run(model, x).astype(np.float64)
        err_nearest = np.mean((run(_nearest(model), x) - ref) ** 2)
        err_ada = np.mean((run(rounded, x) - ref) ** 2)
        assert err_ada < 0.8 * err_nearest


def test_bad_configs_and_unsupported_graphs(block):
    model, calib, _ = block
    with pytest.raises(ConfigError, match="iterations=-1"):
        AdaRoundConfig(iterations=-1)
    with pytest.raises(ConfigError, match="beta_start"):
        AdaRoundConfig(beta_start=1.0, beta_end=2.0)
    with pytest.raises(ConfigError, match="not Conv/Gemm"):
        adaround_onnx(model, calib, AdaRoundConfig(layers=("nope",)))
    proto = onnx.load_from_string(model)
    proto.graph.node.append(helper.make_node("Softmax", ["y"], ["p"], name="softmax"))
    proto.graph.output[0].name = "p"
    with pytest.raises(UnsupportedError, match="Softmax"):
        adaround_onnx(proto.SerializeToString(), calib, AdaRoundConfig(iterations=1))



def _conv1_channel_means(model: bytes, x: np.ndarray) -> np.ndarray:
    """Per-channel mean of the first Conv's output 'c1' (an extra graph output), run by ONNX Runtime."""
    proto = onnx.load_from_string(model)
    proto.graph.output.append(helper.make_tensor_value_info("c1", onnx.TensorProto.FLOAT, None))
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(["c1"], {"x": x})[0].astype(np.float64).mean(axis=(0, 2, 3))


def test_quantized_inputs_bias_correction_matches_the_float_mean_on_rounded_inputs(block):
    """With ``activation_ranges`` each layer's input carries the int8 model's uint8 rounding (here a range
    that clips the input); the bias correction then makes the layer's mean output on those rounded
    inputs equal the float layer's on the float inputs, which it does not without the ranges."""
    import torch

    from edgeseal.converters.adaround import fake_quant_uint8

    model, calib, _ = block
    ranges = {"x": (-0.3, 2.5)}  # clips the input's tails: a large mean shift at the first Conv
    xq = fake_quant_uint8(torch.from_numpy(calib), *ranges["x"]).numpy()
    want = _conv1_channel_means(model, calib)
    scale = np.abs(want).max()
    aware, _ = adaround_onnx(model, calib, AdaRoundConfig(iterations=0, samples=32), activation_ranges=ranges)
    unaware, _ = adaround_onnx(model, calib, AdaRoundConfig(iterations=0, samples=32))
    np.testing.assert_allclose(_conv1_channel_means(aware, xq), want, atol=1e-4 * scale)
    assert np.abs(_conv1_channel_means(unaware, xq) - want).max() > 100 * 1e-4 * scale


def test_graph_runner_max_pool_matches_onnx_runtime():
    """Conv -> MaxPool (pads, stride 2, ceil_mode) -> Conv: the second layer's round-to-nearest output error that
    AdaRound reports, computed through its torch MaxPool, equals the one ONNX Runtime gives for the same models."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32), rng.normal(size=(5, 4, 1, 1)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("MaxPool", ["c1"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                          pads=[1, 0, 1, 1], ceil_mode=1),
         helper.make_node("Conv", ["p", "w2"], ["y"], name="conv2")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3, 9, 9])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.normal(size=(8, 3, 9, 9)).astype(np.float32)
    _, report = adaround_onnx(model, x, AdaRoundConfig(iterations=0, bias_correction=False, samples=8))
    proto = onnx.load_from_string(model)
    for t in proto.graph.initializer:  # both weights rounded to nearest on their int8 grids
        w = numpy_helper.to_array(t).astype(np.float64)
        s = int8_grid(w)
        t.CopyFrom(numpy_helper.from_array((np.round(w / s) * s).astype(np.float32), t.name))
    want = float(np.mean((run(proto.SerializeToString(), x).astype(np.float64) - run(model, x)) ** 2))
    assert report.layers[1].node == "conv2"
    assert report.layers[1].mse_nearest == pytest.approx(want, rel=1e-4)
