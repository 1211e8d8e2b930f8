import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeseal.converters.infer import OnnxRunner
from edgeseal.converters.quantize import OnnxDynamicConfig, quantize_onnx_dynamic
from edgeseal.converters.smooth import SmoothConfig, smooth_onnx
from edgeseal.runtime.errors import ConfigError


def _model(w: np.ndarray) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[1]])
    r = helper.make_tensor_value_info("r", TensorProto.FLOAT, [None, w.shape[0]])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("Relu", ["x"], ["r"], name="other_consumer"),
    ]
    g = helper.make_graph(nodes, "g", [x], [y, r], [numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_smoothing_is_exact_in_float_and_helps_int8():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    x = rng.normal(size=(256, 64)).astype(np.float32)
    x[:, 3] *= 60.0  # one outlier channel, as in transformer activations
    model = _model(w)
    smoothed, nodes = smooth_onnx(model, x, SmoothConfig(alpha=0.5))
    assert nodes == ["mm"]
    g = onnx.load_from_string(smoothed).graph
    assert [n.op_type for n in g.node] == ["Mul", "MatMul", "Relu"]
    assert g.node[2].input[0] == "x"  # the other consumer still reads the original tensor
    ref = list(OnnxRunner(model).run_feeds({"x": x}).values())
    got = list(OnnxRunner(smoothed).run_feeds({"x": x}).values())
    assert np.allclose(ref[0], got[0], rtol=1e-4, atol=1e-3) and np.array_equal(ref[1], got[1])
    inv = numpy_helper.to_array(next(i for i in g.initializer if i.name.endswith("smooth_inv_scale")))
    assert inv.shape == (64,) and inv[3] == inv.min()  # the outlier channel is divided down the most

    def int8_error(m: bytes) -> float:
        q = quantize_onnx_dynamic(m, OnnxDynamicConfig(per_channel=True, preprocess=False))
        return float(np.abs(OnnxRunner(q).run(x) - ref[0]).mean())

    assert int8_error(smoothed) < 0.5 * int8_error(model)


def test_smooth_config():
    with pytest.raises(ConfigError, match="alpha"):
        SmoothConfig(alpha=1.5)
