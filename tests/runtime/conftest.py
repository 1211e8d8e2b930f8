"""Tiny models built in code, and keys, shared by the runtime tests."""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal


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
