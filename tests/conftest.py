"""Fixtures shared by every test folder: tiny models built in code."""

from __future__ import annotations

import numpy as np
import pytest


def onnx_mlp(n_in: int = 16, n_hidden: int = 32, n_out: int = 4, seed: int = 0) -> bytes:
    """A two-layer MLP (MatMul+Add+Relu+MatMul+Add+Softmax) as ONNX bytes, built with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "W1": rng.standard_normal((n_in, n_hidden)).astype(np.float32),
        "b1": rng.standard_normal(n_hidden).astype(np.float32),
        "W2": rng.standard_normal((n_hidden, n_out)).astype(np.float32),
        "b2": rng.standard_normal(n_out).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["z0"]),
        helper.make_node("Add", ["z0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", n_out]),
        ],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    return onnx_mlp()


@pytest.fixture(scope="session")
def small_onnx_model() -> bytes:
    """The smallest useful model: keeps exhaustive tamper tests fast."""
    return onnx_mlp(4, 4, 2)
