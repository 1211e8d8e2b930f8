"""Backend choice (what imports *and works*) and plaintext wiping after hand-off."""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import UnsupportedError, backends
from edgeseal.runtime._memory import PlainBuffer
from edgeseal.runtime.backends import litert


def test_litert_backend_is_chosen_only_when_it_runs(monkeypatch):
    class Broken:  # imports fine, fails when it runs: what tflite-runtime 2.14 does under NumPy 2
        def __init__(self, model_content=None, num_threads=None):
            raise RuntimeError("numpy.core.multiarray failed to import")

    class Works:
        def __init__(self, model_content=None, num_threads=None):
            from ai_edge_litert.interpreter import Interpreter

            self._it = Interpreter(model_content=model_content)

        def __getattr__(self, name):
            return getattr(self._it, name)

    def install(candidates):
        monkeypatch.setattr(litert, "_candidates", lambda: iter(candidates))
        litert._interpreter.cache_clear()

    try:
        install([("tflite_runtime", Broken)])
        assert "tflite_runtime fails at run time (RuntimeError)" in litert.problem()
        with pytest.raises(UnsupportedError, match=r"pip install 'edgeseal\[tflite\]'"):
            backends.select("tflite")
        install([("tflite_runtime", Broken), ("ai_edge_litert", Works)])
        assert litert.problem() is None and litert.interpreter_name() == "ai_edge_litert"
        install([])
        assert "neither ai_edge_litert nor tflite_runtime is installed" in litert.problem()
    finally:
        monkeypatch.undo()
        litert._interpreter.cache_clear()
    assert backends.select("tflite").NAME == "litert"  # the real environment again


def test_unknown_format_is_unsupported():
    with pytest.raises(UnsupportedError, match="no backend runs content format 'coreml'"):
        backends.select("coreml")
    with pytest.raises(UnsupportedError, match="does not run 'onnx' models"):
        backends.select("onnx", "litert")


@pytest.fixture
def plain_buffers(monkeypatch):
    """Every PlainBuffer the loader creates (``made``), and the ones wiped so far (``wiped``, by id)."""
    made, wiped = [], set()
    original_init, original_wipe = PlainBuffer.__init__, PlainBuffer.wipe

    def init(self, size):
        original_init(self, size)
        made.append(self)

    def wipe(self):
        original_wipe(self)
        wiped.add(id(self))

    monkeypatch.setattr(PlainBuffer, "__init__", init)
    monkeypatch.setattr(PlainBuffer, "wipe", wipe)
    return made, wiped


def test_onnxruntime_plaintext_is_wiped_right_after_session_creation(plain_buffers, onnx_model, publisher, device, x16):
    model = edgeseal.load(edgeseal.seal(onnx_model, publisher=publisher, devices=[device]), key=device,
                          trusted=[publisher])
    (buf,), wiped = plain_buffers
    assert id(buf) in wiped and not any(buf.view)
    assert model.run(x16)["probs"].shape == (5, 4)  # ORT owns a parsed copy; the model still runs


def test_litert_plaintext_is_wiped_at_close(plain_buffers, tflite_model, publisher, device):
    model = edgeseal.load(edgeseal.seal(tflite_model, publisher=publisher, devices=[device]), key=device,
                          trusted=[publisher])
    (buf,), wiped = plain_buffers
    assert id(buf) not in wiped  # LiteRT reads from the buffer while the model lives
    model.run(np.zeros((1, 1, 8, 8), np.float32))
    model.close()
    assert id(buf) in wiped and not any(buf.view)
