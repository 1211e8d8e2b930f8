"""Operator listing (without onnx/TensorFlow) and the op check that refuses a model by op name."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeseal.runtime.errors import ConfigError, UnsupportedError
from edgeseal.targets import check_model, detect_format, model_ops, require_supported
from edgeseal.targets.profile import ModelFormat

from verify_fixtures import digits


def _onnx_counter(model: onnx.ModelProto) -> Counter:
    """Reference listing with the onnx package: every node, sub-graphs and function bodies included."""
    out: Counter = Counter()

    def walk(graph):
        for node in graph.node:
            out[(node.domain or "ai.onnx", node.op_type)] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    for f in model.functions:
        for node in f.node:
            out[(node.domain or "ai.onnx", node.op_type)] += 1
        out.pop((f.domain, f.name), None)
    return out


def _tricky_model(custom: bool) -> onnx.ModelProto:
    """If with two branches, a model-local function, and optionally an op no runtime has."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"]), helper.make_node("Abs", ["e"], ["e2"])],
                               "else", [], [helper.make_tensor_value_info("e2", TensorProto.FLOAT, [2])])
    fn = helper.make_function("local.fn", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Twice", ["i"], ["y" if not custom else "z"], domain="local.fn")]
    if custom:
        nodes.append(helper.make_node("FancyGelu", ["z"], ["y"], domain="com.example"))
    graph = helper.make_graph(nodes, "g", [x, cond], [y])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local.fn", 1)]
    if custom:
        opsets.append(helper.make_opsetid("com.example", 1))
    return helper.make_model(graph, opset_imports=opsets, functions=[fn])


def test_onnx_op_listing_matches_the_onnx_package():
    model = onnx.load(str(digits()["int8"]))
    ours = model_ops(model.SerializeToString())
    assert ours == _onnx_counter(model)
    assert ours[("ai.onnx", "QuantizeLinear")] == 8 and ours[("ai.onnx", "Conv")] == 2
    tricky = _tricky_model(custom=False)
    ours = model_ops(tricky.SerializeToString())
    assert ours == _onnx_counter(tricky)
    # sub-graph ops are found, the local function call is not a kernel but its body is
    assert ours == Counter({("ai.onnx", "If"): 1, ("ai.onnx", "Relu"): 1, ("ai.onnx", "Neg"): 1,
                            ("ai.onnx", "Abs"): 1, ("ai.onnx", "Add"): 1})


def test_supported_model_passes_and_reports_its_ops():
    check = require_supported(digits()["int8"].read_bytes(), "rpi4")
    assert check.ok and check.unsupported == ()
    assert check.used == {"Conv": 2, "DequantizeLinear": 16, "Flatten": 1, "Gemm": 2, "MaxPool": 2,
                          "QuantizeLinear": 8}
    assert require_supported(_tricky_model(custom=False).SerializeToString(), "rpi5").ok


def test_unsupported_op_is_refused_by_name():
    data = _tricky_model(custom=True).SerializeToString()
    check = check_model(data, "rpi4")
    assert not check.ok and check.unsupported == ("com.example::FancyGelu",)
    with pytest.raises(UnsupportedError) as err:
        require_supported(data, "rpi4")
    assert "'com.example::FancyGelu'" in str(err.value) and "rpi4" in str(err.value)
    assert err.value.reason == "unsupported op com.example::FancyGelu"


def test_op_missing_from_a_restricted_user_opset(tmp_path, monkeypatch):
    """A user profile with a smaller op set (e.g. an ORT minimal build) refuses what it lacks."""
    from edgeseal.targets import get_profile

    (tmp_path / "targets").mkdir()
    (tmp_path / "opsets").mkdir()
    (tmp_path / "opsets" / "ort-minimal.toml").write_text(
        'name = "ort-minimal"\nformat = "onnx"\n[domains]\n"ai.onnx" = ["Conv", "Gemm", "QuantizeLinear", '
        '"DequantizeLinear", "Flatten"]\n')
    text = open(get_profile("rpi4").source).read()
    (tmp_path / "targets" / "pi-minimal.toml").write_text(
        text.replace('name = "rpi4"', 'name = "pi-minimal"').replace('opset = "onnxruntime-cpu"', 'opset = "ort-minimal"'))
    monkeypatch.setenv("EDGESEAL_TARGETS_PATH", str(tmp_path / "targets"))
    with pytest.raises(UnsupportedError, match=r"operator\(s\) 'MaxPool' that onnxruntime on target 'pi-minimal'"):
        require_supported(digits()["int8"].read_bytes(), "pi-minimal")


def test_format_mismatch_and_garbage():
    onnx_bytes = digits()["int8"].read_bytes()
    assert detect_format(onnx_bytes) is ModelFormat.ONNX
    with pytest.raises(UnsupportedError, match="target 'android-arm64' runs tflite models on litert, but this model is onnx"):
        require_supported(onnx_bytes, "android-arm64")
    with pytest.raises(ConfigError, match="neither ONNX nor TFLite"):
        detect_format(b"\xff\xff\xff\xff garbage")


@pytest.mark.slow
def test_tflite_ops_from_a_real_conversion():
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    data = litert_torch.convert(model, (torch.zeros(1, 8),)).model_content()
    assert detect_format(data) is ModelFormat.TFLITE
    check = require_supported(data, "android-arm64")
    assert check.used == {"FULLY_CONNECTED": 2}  # the ReLU is fused into the first FC
    assert not check_model(data, "rpi4").format_ok
    # the LiteRT interpreter agrees about what is in the file
    from ai_edge_litert.interpreter import Interpreter

    ops = Interpreter(model_content=data)._get_ops_details()
    assert Counter(op["op_name"] for op in ops) == Counter(check.used)
    assert np.isfinite(len(ops))
