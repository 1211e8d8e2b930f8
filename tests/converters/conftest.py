"""Shared fixtures: the real digits data and one trained digits CNN per test session."""

from __future__ import annotations

import copy

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
