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


def pytest_terminal_summary(terminalreporter):
    """Print the fuzz figure (issue 11: cases run, untyped outcomes) when the fuzz tests ran."""
    import json
    import os
    import sys

    fuzz = sys.modules.get("tests.runtime.test_fuzz") or sys.modules.get("test_fuzz")
    stats = getattr(fuzz, "STATS", None)
    if not stats or not stats.get("cases"):
        return
    untyped = stats.get("untyped", 0)
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(stats.items()) if k != "cases")
    terminalreporter.write_line(f"fuzz ({fuzz.PROFILE} profile): {stats['cases']} cases, {untyped} untyped outcomes "
                                f"({outcomes})")
    target = os.environ.get("EDGESEAL_FUZZ_REPORT")
    if target:
        with open(target, "w") as f:
            json.dump({"profile": fuzz.PROFILE, "cases": stats["cases"], "untyped": untyped, **dict(stats)}, f,
                      indent=2)
