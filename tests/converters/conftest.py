"""Shared fixtures: the real digits data and one trained digits CNN per test session."""

from __future__ import annotations

import copy
import io

import numpy as np

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def digits():
    from edgeseal.converters.zoo import load_digits_split

    return load_digits_split(seed=0)


@pytest.fixture(scope="session")
def _trained(digits):
    from edgeseal.converters.zoo import train_digits_cnn

    torch.set_num_threads(2)
    return train_digits_cnn(digits, epochs=10, seed=0, show_progress=False)


@pytest.fixture()
def digits_model(_trained):
    """A fresh copy of the session's trained model (tests may mutate it)."""
    return copy.deepcopy(_trained)


@pytest.fixture(scope="session")
def exported(digits, _trained):
    from edgeseal.converters.export import export_onnx, export_tflite

    return {"onnx": export_onnx(_trained, digits.x_test), "tflite": export_tflite(_trained, digits.x_test)}


def _acc(model_bytes, x, y):
    from edgeseal.converters.infer import runner_for

    return 100.0 * float((runner_for(model_bytes).run_batched(x).argmax(-1) == y).mean())


@pytest.fixture(scope="session")
def acc():
    """acc(model_bytes, x, y) -> accuracy in points, run in the model's own runtime."""
    return _acc


# --- a small conv net as ONNX, TFLite and full-integer TFLite (tests of the runners and the latency harness)

def _small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10),
    ).eval()


@pytest.fixture(scope="session")
def small_x():
    """Twelve random samples for the small conv net (1x8x8)."""
    return np.random.default_rng(0).standard_normal((12, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="session")
def onnx_fp32():
    buf = io.BytesIO()
    torch.onnx.export(_small_net(), torch.zeros(1, 1, 8, 8), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tflite_fp32():
    litert_torch = pytest.importorskip("litert_torch")
    return bytes(litert_torch.convert(_small_net(), (torch.zeros(1, 1, 8, 8),)).model_content())


@pytest.fixture(scope="session")
def tflite_int8(tflite_fp32):
    pytest.importorskip("ai_edge_quantizer")
    from edgeseal.converters.quantize import quantize_tflite_int8

    calib = np.random.default_rng(1).standard_normal((32, 1, 8, 8)).astype(np.float32)
    return quantize_tflite_int8(tflite_fp32, calib)
