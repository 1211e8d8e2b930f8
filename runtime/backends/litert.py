"""LiteRT (TFLite) backend: ``ai_edge_litert``, else ``tflite_runtime`` where it really works.

``tflite-runtime`` 2.14 (its last release) imports under NumPy 2 but fails when it
runs, so a candidate counts only after a tiny built-in model has actually run.
The model is handed over as ``model_content`` bytes, never as a file. LiteRT keeps
using that buffer, so it is wiped only when the session closes.
"""

from __future__ import annotations

import base64
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import InvalidInput, UnsupportedError
from ..tensors import DTYPES, QuantParams, TensorSpec

NAME = "litert"
FORMAT = "tflite"

# A 1-op TFLite model (y = x + x, float32[1]; made with litert-torch), used to prove an interpreter runs.
_PROBE_MODEL = base64.b64decode(
    "HAAAAFRGTDMUACAABAAIAAwAEAAUAAAAGAAcABQAAAADAAAAOAAAACwAAABMAQAADAAAALAAAAAsAAAA"
    "BQAAAJwCAACYAgAAlAIAABABAADIAAAAAQAAAEQBAAABAAAAzAEAAAEAAAAQAAAAAAAKABAADAAIAAQA"
    "CgAAAAwAAAAcAAAAIAAAAA8AAABzZXJ2aW5nX2RlZmF1bHQAAQAAABQAAAABAAAAKAAAAAgADAAIAAQA"
    "CAAAAAEAAAAEAAAACAAAAG91dHB1dF8wAAAAAHr///8EAAAABgAAAGFyZ3NfMAAAAgAAAEgAAAAEAAAA"
    "yP///wgAAAAEAAAAFwAAAGtlZXBfc3RhYmxlaGxvX2NvbnN0YW50AML///8EAAAABAAAAHRydWUIAAwA"
    "BAAIAAgAAAAIAAAAAwAAABMAAABtaW5fcnVudGltZV92ZXJzaW9uAAAABgAIAAQABgAAAAQAAAAQAAAA"
    "MS41LjAAAAAAAAAAAAAAAA8AAABNTElSIENvbnZlcnRlZC4AAAAOABgABAAIAAwAEAAUAA4AAAA4AAAA"
    "LAAAACAAAAAUAAAABAAAAAQAAABtYWluAAAAAAEAAAAwAAAAAQAAAAEAAAABAAAAAAAAAAIAAAC8AAAA"
    "VAAAAAAADgAUAAAACAAMAAcAEAAOAAAAAAAACxgAAAAMAAAABAAAADD///8BAAAAAQAAAAIAAAAAAAAA"
    "AAAAAAAACgAIAAAAAAAEAAoAAAABAAAAsv///wAAAAE0AAAAAgAAAAgAAAA0AAAAHwAAAHNlcnZpbmdf"
    "ZGVmYXVsdF9vdXRwdXRfMF9vdXRwdXQAAQAAAAEAAAAEAAYABAAAAAAAFgAYAAgAAAAMABAAFAAAAAAA"
    "AAAHABYAAAAAAAABLAAAAAEAAAAIAAAAKAAAABYAAABzZXJ2aW5nX2RlZmF1bHRfYXJnc18wAAABAAAA"
    "AQAAAPz///8EAAQABAAAAA=="
)


def _candidates():
    try:
        from ai_edge_litert.interpreter import Interpreter

        yield "ai_edge_litert", Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        yield "tflite_runtime", Interpreter
    except ImportError:
        pass


@lru_cache(maxsize=1)
def _interpreter():
    """(module name, Interpreter class) of the first candidate that runs the probe model, or (None, why)."""
    failures = []
    for name, cls in _candidates():
        try:
            it = cls(model_content=_PROBE_MODEL)
            it.allocate_tensors()
            it.set_tensor(it.get_input_details()[0]["index"], np.array([2.0], np.float32))
            it.invoke()
            if float(it.get_tensor(it.get_output_details()[0]["index"])[0]) == 4.0:
                return name, cls
            failures.append(f"{name} computed a wrong result")
        except Exception as exc:  # the NumPy 2 breakage surfaces as assorted errors
            failures.append(f"{name} fails at run time ({type(exc).__name__})")
    return None, "; ".join(failures) or "neither ai_edge_litert nor tflite_runtime is installed"


def problem() -> str | None:
    name, detail = _interpreter()
    return None if name else detail


def interpreter_name() -> str | None:
    return _interpreter()[0]


def graph_reader(model: bytes) -> Any:
    """A LiteRT interpreter over ``model`` for *reading* its graph (ops, tensors, signatures), from the
    interpreter package that works here; tensors are not allocated and nothing is invoked
    (:func:`edgeseal.converters.probe.tflite_graph`). Models are run through :class:`Session`."""
    name, cls = _interpreter()
    if name is None:
        raise UnsupportedError(f"no working LiteRT interpreter to read a .tflite graph: {cls}")
    return cls(model_content=bytes(model))


def _spec(detail: dict) -> TensorSpec:
    quant = None
    params = detail.get("quantization_parameters") or {}
    scales = params.get("scales")
    if scales is not None and len(scales):
        quant = QuantParams(
            scale=tuple(float(s) for s in scales),
            zero_point=tuple(int(z) for z in params["zero_points"]),
            axis=int(params.get("quantized_dimension", 0)) if len(scales) > 1 else None,
        )
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    shape = tuple(int(d) if d >= 0 else None for d in dims)
    return TensorSpec(name=detail["name"], dtype=_dtype(detail), shape=shape, quant=quant)


def _dtype(detail: dict) -> str:
    """The spec dtype of a LiteRT tensor: its NumPy dtype name, ``string`` for TFLite strings."""
    dtype = np.dtype(detail["dtype"])
    name = "string" if dtype.kind in "SUO" else dtype.name
    if name not in DTYPES:
        raise UnsupportedError(f"tensor {detail['name']!r} has LiteRT type {dtype}, which edgeseal cannot describe",
                               reason="unsupported type")
    return name


class Session:
    """A LiteRT interpreter over ``model_content``. Interpreters are not thread-safe: runs are serialized."""

    holds_buffer = True  # the interpreter reads the model's buffers in place for as long as it lives

    def __init__(self, model: bytes, threads: int | None = None, in_place: bool = True) -> None:
        # ``in_place`` is accepted for the backends' common signature: LiteRT always reads ``model`` in place.
        name, cls = _interpreter()
        if name is None:
            raise UnsupportedError(f"no working LiteRT interpreter: {cls}", reason="backend missing")
        try:
            self._it = cls(model_content=model, num_threads=threads)
            self._it.allocate_tensors()
        except Exception as exc:
            raise UnsupportedError(f"{name} cannot load this model: {str(exc).splitlines()[0][:300]}") from None
        self._lock = threading.Lock()
        self._in = self._it.get_input_details()
        self._out = self._it.get_output_details()
        self.inputs = tuple(_spec(d) for d in self._in)
        self.outputs = tuple(_spec(d) for d in self._out)
        self._shapes = {d["name"]: tuple(int(v) for v in d["shape"]) for d in self._in}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            try:
                for detail in self._in:
                    value = feeds[detail["name"]]
                    if tuple(value.shape) != self._shapes[detail["name"]]:
                        self._resize(detail, tuple(value.shape))
                    self._it.set_tensor(detail["index"], value)
                self._it.invoke()
                return {d["name"]: self._it.get_tensor(d["index"]).copy() for d in self._out}
            except ValueError as exc:
                raise InvalidInput(f"LiteRT rejected the inputs: {exc}") from None

    def _resize(self, detail: dict, shape: tuple[int, ...]) -> None:
        """Reallocate the interpreter for an input of a new shape; if the model cannot take it (a fixed
        reshape inside, say), go back to the shape it had and raise InvalidInput naming both."""
        name, before = detail["name"], self._shapes[detail["name"]]
        try:
            self._it.resize_tensor_input(detail["index"], shape)
            self._it.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            self._it.resize_tensor_input(detail["index"], before)
            self._it.allocate_tensors()
            raise InvalidInput(f"LiteRT cannot run input {name!r} at shape {shape}: {str(exc).splitlines()[0][:200]}; "
                               f"this model runs at {before}: feed batches of that shape") from None
        self._shapes[name] = shape

    def close(self) -> None:
        self._it = None
