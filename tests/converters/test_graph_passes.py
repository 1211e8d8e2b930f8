import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeseal.converters.graph_passes import (drop_zero_weight_zero_points, float_graph_outputs, fold_pad_into_conv,
                                              strip_debug_info)
from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static

from cnn_graphs import conv_block, run


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


def test_pad_folds_into_the_conv_and_the_outputs_stay_equal():
    rng = np.random.default_rng(0)
    model = conv_block(rng, pad=True)
    folded, n = fold_pad_into_conv(model)
    assert n == 1 and "Pad" in _ops(model) and "Pad" not in _ops(folded)
    conv1 = next(x for x in onnx.load_from_string(folded).graph.node if x.name == "conv1")
    assert list(next(a for a in conv1.attribute if a.name == "pads").ints) == [1, 1, 1, 1]
    x = rng.normal(size=(2, 3, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(run(folded, x), run(model, x))


def test_a_non_zero_pad_value_is_not_folded():
    rng = np.random.default_rng(1)
    proto = onnx.load_from_string(conv_block(rng, pad=True))
    proto.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "value"))
    pad = next(n for n in proto.graph.node if n.op_type == "Pad")
    pad.input.append("value")
    folded, n = fold_pad_into_conv(proto.SerializeToString())
    assert n == 0 and "Pad" in _ops(folded)


@pytest.fixture(scope="module")
def int8_block():
    rng = np.random.default_rng(2)
    model = conv_block(rng)
    calib = rng.normal(size=(32, 3, 12, 12)).astype(np.float32)
    return quantize_onnx_static(model, calib, OnnxStaticConfig(preprocess=False)), calib


def test_stripping_debug_info_and_zero_points_keeps_the_function(int8_block):
    q, x = int8_block
    proto = onnx.load_from_string(q)
    proto.graph.node[0].metadata_props.add(key="pkg.torch.onnx.stack_trace", value="x" * 5000)
    proto.graph.node[0].doc_string = "y" * 1000
    noisy = proto.SerializeToString()
    stripped = strip_debug_info(noisy)
    assert len(stripped) == len(strip_debug_info(q)) < len(noisy) - 5800  # the 6 kB added above are gone
    assert not any(n.metadata_props or n.doc_string for n in onnx.load_from_string(stripped).graph.node)
    small, dropped = drop_zero_weight_zero_points(stripped)
    assert dropped >= 3  # the weights of three Convs (and their biases) have all-zero zero points
    assert len(small) < len(stripped)
    np.testing.assert_array_equal(run(small, x[:4]), run(q, x[:4]))
    g = onnx.load_from_string(small).graph
    inits = {i.name: i for i in g.initializer}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8:
            assert len(n.input) == 2  # weight zero points gone
        if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
            assert len(n.input) == 3  # activation zero points (uint8, asymmetric) stay


def test_zero_points_feeding_a_gemm_stay():
    # ORT's ARM build fuses DQ -> Gemm into QGemm, which needs the weight's zero point
    rng = np.random.default_rng(3)
    from onnx import TensorProto, helper

    w = rng.normal(size=(4, 6)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.normal(size=(16, 6)).astype(np.float32)
    q = quantize_onnx_static(model, x, OnnxStaticConfig(preprocess=False))
    kept, dropped = drop_zero_weight_zero_points(q)
    assert dropped == 0
    assert all(len(n.input) == 3 for n in onnx.load_from_string(kept).graph.node if n.op_type == "DequantizeLinear")


def test_graph_outputs_leave_the_8_bit_grid(int8_block):
    q, x = int8_block
    g = onnx.load_from_string(q).graph
    out_q = next(n for n in g.node if n.op_type == "QuantizeLinear" and any(
        m.op_type == "DequantizeLinear" and m.input[0] == n.output[0] and m.output[0] == "y" for m in g.node))
    scale = float(numpy_helper.to_array(next(i for i in g.initializer if i.name == out_q.input[1])))
    new, removed = float_graph_outputs(q)
    assert removed == 1 and len(_ops(new)) == len(_ops(q)) - 2
    assert float_graph_outputs(new) == (new, 0)  # nothing left to remove
    before, after = run(q, x[:4]), run(new, x[:4])
    assert len(np.unique(before)) <= 256 < len(np.unique(after))  # 8-bit levels before, float after
    assert np.abs(after - before).max() <= scale / 2 + 1e-5  # the old output is the new one rounded to that grid
