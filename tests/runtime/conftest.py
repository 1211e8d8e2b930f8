"""Tiny models built in code, and keys, shared by the runtime tests."""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal


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


@pytest.fixture(scope="session")
def tflite_model() -> bytes:
    """A small conv net converted to TFLite with litert-torch (no TensorFlow)."""
    import litert_torch
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 10),
    ).eval()
    return bytes(litert_torch.convert(net, (torch.zeros(1, 1, 8, 8),)).model_content())


@pytest.fixture(scope="session")
def publisher():
    return edgeseal.generate_publisher_key()


@pytest.fixture(scope="session")
def device():
    return edgeseal.generate_device_key()


@pytest.fixture(scope="session")
def sealed_onnx(onnx_model, publisher, device) -> bytes:
    return edgeseal.seal(onnx_model, publisher=publisher, devices=[device], name="mlp")


@pytest.fixture
def x16() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
