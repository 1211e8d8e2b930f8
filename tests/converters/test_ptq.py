"""edgeseal's int8 recipe for conv nets: the stem kept float as reported, AdaRounded integers in the graph,
and the rounded weights carried back into the torch model for the TFLite path."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeseal.converters.adaround import AdaRoundConfig, int8_grid
from edgeseal.converters.ptq import input_convs, load_onnx_weights, quantize_onnx_corrected
from edgeseal.converters.ranges import activation_ranges
from edgeseal.runtime.errors import ConfigError

from cnn_graphs import conv_block, run


@pytest.fixture(scope="module")
def block():
    rng = np.random.default_rng(5)
    model = conv_block(rng, act="Clip", spread=2.0, channels=8)
    calib = (rng.normal(size=(32, 3, 12, 12)) + 0.5).astype(np.float32)
    return model, calib


def test_float_input_conv_leaves_the_stem_float_and_quantizes_the_rest(block):
    model, calib = block
    assert input_convs(model) == ("conv1",)
    int8, report = quantize_onnx_corrected(model, calib, adaround=AdaRoundConfig(iterations=20, samples=16,
                                                                                 quantized_inputs=True),
                                           float_input_conv=True)
    assert report.float_nodes == ("conv1",) and "kept float: conv1" in report.summary()
    g = onnx.load_from_string(int8).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    convs = {n.name: n for n in g.node if n.op_type == "Conv"}
    # the stem reads the graph input itself (no QuantizeLinear on 'x') and a float weight
    assert convs["conv1"].input[0] == "x" and convs["conv1"].input[1] in inits
    assert inits[convs["conv1"].input[1]].dtype == np.float32
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "x" for n in g.node)
    # the others read dequantized uint8 activations and dequantized int8 weights whose integers and
    # per-channel scales are AdaRound's (max|w| / 127 of the float weights, the levels it chose)
    rounded = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(report.rounded_model).graph.initializer}
    ranges = activation_ranges(int8)
    for name in ("dw", "pw"):
        node = convs[name]
        x_dq, w_dq = producer[node.input[0]], producer[node.input[1]]
        assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
        assert inits[x_dq.input[2]].dtype == np.uint8 and x_dq.input[0].removesuffix("_QuantizeLinear_Output") in ranges
        q, s = inits[w_dq.input[0]], inits[w_dq.input[1]]
        assert q.dtype == np.int8
        w = rounded[w_dq.input[0].removesuffix("_quantized")]
        np.testing.assert_allclose(s, int8_grid(w).ravel(), rtol=1e-6)
        np.testing.assert_array_equal(q.astype(np.float64), np.round(w / int8_grid(w)))
    assert [x.node for x in report.adaround.layers] == ["dw", "pw"]  # the float stem is not rounded
    # and the model still computes the float function approximately
    ref = run(model, calib)
    sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((run(int8, calib) - ref) ** 2))
    assert sqnr > 20


def test_load_onnx_weights_folds_batchnorm_and_reproduces_the_onnx_model():
    torch = pytest.importorskip("torch")
    from edgeseal.converters.export import ExportConfig, export_onnx

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(6)
            self.dw = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)
            self.fc = torch.nn.Linear(6, 4)

        def forward(self, x):
            y = torch.nn.functional.relu6(self.bn(self.conv(x)))
            return self.fc(self.dw(y).mean(dim=(2, 3)))

    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
        net.bn.weight.uniform_(0.5, 2)
        net.bn.bias.uniform_(-1, 1)
    x = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    exported = export_onnx(net, x, ExportConfig(opset=17, check_samples=4)).model
    proto = onnx.load_from_string(exported)
    for t in proto.graph.initializer:  # change every weight: put it on the int8 grid, as AdaRound leaves it
        w = numpy_helper.to_array(t)
        if w.ndim >= 2:
            s = int8_grid(w.astype(np.float64))
            t.CopyFrom(numpy_helper.from_array((np.round(w / s) * s).astype(np.float32), t.name))
    changed = proto.SerializeToString()
    fresh = Net().eval()
    fresh.load_state_dict(net.state_dict())
    loaded = load_onnx_weights(fresh, changed, x)
    assert isinstance(loaded.bn, torch.nn.Identity) and loaded.conv.bias is not None
    with torch.no_grad():
        got = loaded(torch.from_numpy(x)).numpy()
        before = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, run(changed, x), atol=1e-5)
    assert np.abs(got - before).max() > 1e-4  # the grid weights really arrived
    w = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "dw.weight"))
    np.testing.assert_array_equal(loaded.dw.weight.detach().numpy(), w)
    with pytest.raises(ConfigError, match="names no module"):
        load_onnx_weights(torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3)), changed, x)


def test_weight_sensitivity_is_the_sqnr_of_rounding_that_weight_alone(block):
    from edgeseal.converters.ptq import weight_sensitivity

    model, calib = block
    ranking = weight_sensitivity(model, calib, samples=16)
    assert sorted(r.node for r in ranking) == ["conv1", "dw", "pw"]
    assert [r.sqnr_db for r in ranking] == sorted(r.sqnr_db for r in ranking)
    ref = run(model, calib[:16]).astype(np.float64)
    for r in ranking:  # recomputed here: numpy round-to-nearest of that one weight, ONNX Runtime run
        proto = onnx.load_from_string(model)
        node = next(n for n in proto.graph.node if n.name == r.node)
        t = next(i for i in proto.graph.initializer if i.name == node.input[1])
        w = numpy_helper.to_array(t).astype(np.float64)
        s = np.abs(w).max(axis=(1, 2, 3), keepdims=True) / 127
        t.CopyFrom(numpy_helper.from_array((np.round(w / s) * s).astype(np.float32), t.name))
        got = run(proto.SerializeToString(), calib[:16])
        want = 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2))
        assert abs(r.sqnr_db - want) < 1e-3 and r.params == w.size


def test_float_sensitive_keeps_the_worst_small_layer_float_with_its_float_weight(block):
    model, calib = block
    int8, report = quantize_onnx_corrected(model, calib, float_sensitive=1, float_max_params=100)
    small = [r for r in report.sensitivity if r.params <= 100]  # dw (72 weights); conv1 has 216, pw 32
    assert report.float_nodes == (small[0].node,)
    g = onnx.load_from_string(int8).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    node = next(n for n in g.node if n.name == small[0].node)
    original = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    assert node.input[1] in inits and inits[node.input[1]].dtype == np.float32
    assert not np.allclose(inits[node.input[1]], 0)
    # bias correction may move the bias, never the float weight of a layer kept float
    np.testing.assert_array_equal(inits[node.input[1]], original[node.input[1]])
    with pytest.raises(ConfigError, match="float_sensitive=-1"):
        quantize_onnx_corrected(model, calib, float_sensitive=-1)


def test_matching_tflite_ops_lines_up_the_two_exports_layer_by_layer(exported):
    from edgeseal.converters.ptq import matching_tflite_ops
    from edgeseal.converters.quantize import tflite_op_outputs

    onnx_model, tfl = exported["onnx"].model, exported["tflite"].model
    layers = [n for n in onnx.load_from_string(onnx_model).graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) >= 2
    got = matching_tflite_ops(onnx_model, tfl, tuple(n.name for n in layers))
    ops = [x for x in tflite_op_outputs(tfl) if x[0] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert list(got) == ops
    assert [op == "FULLY_CONNECTED" for op, _ in got] == [n.op_type == "Gemm" for n in layers]
    assert matching_tflite_ops(onnx_model, tfl, (layers[-1].name,)) == (ops[-1],)
    with pytest.raises(ConfigError, match="not Conv/Gemm nodes"):
        matching_tflite_ops(onnx_model, tfl, ("nope",))
    proto = onnx.load_from_string(onnx_model)  # one layer fewer: the chains no longer line up
    first = layers[0]
    proto.graph.node.remove(next(n for n in proto.graph.node if n.name == first.name))
    with pytest.raises(ConfigError, match="same network"):
        matching_tflite_ops(proto.SerializeToString(), tfl, ())
