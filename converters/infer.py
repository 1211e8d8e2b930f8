"""Host-side runners for exported models: thin wrappers over the runtime's backend sessions.

The converters need to run fp32 and int8 models side by side (numerical checks,
accuracy, latency). A runner takes the model bytes, builds the runtime's own backend
session for them (``edgeseal.runtime.backends.select(fmt).Session`` — the very code
that runs a sealed model on the device) and exchanges float through
``edgeseal.runtime.FloatIO``: a full-integer TFLite model's int8 input is quantized and
its int8 output dequantized with the model's own scales, by the one rounding rule
(``edgeseal.runtime.quantio.quantize``). ``raw=True`` exchanges the integers as they are.

What a runner adds over ``edgeseal.runtime.load`` is batch handling for host-side
evaluation: ``run(x)`` takes any leading batch size (LiteRT resizes the input tensor,
which the backend session does when the shape changes), and ``run_batched`` splits a
data set into the model's own batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, InvalidInput, UnsupportedError
from edgeseal.runtime.quantio import FloatIO, is_quantized, quantize
from edgeseal.runtime.tensors import validate_inputs

__all__ = ["OnnxRunner", "TfliteRunner", "runner_for", "detect_format"]


def detect_format(model: bytes) -> str:
    """'onnx' or 'tflite', read off the bytes (ConfigError for anything else)."""
    from edgeseal.targets import detect_format as model_format

    return model_format(bytes(model)).value


class _AnyBatch:
    """A backend session as FloatIO sees it, with each input's leading dimension free.

    LiteRT resizes an input tensor to whatever shape it is given (the backend session calls
    ``resize_tensor_input`` when the shape changes), so a fixed batch in the file is not a limit
    for host-side evaluation; every other dimension, dtype and name is still checked.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = tuple(
            dataclasses.replace(s, shape=(None, *s.shape[1:])) if s.kind == "tensor" and s.shape else s
            for s in session.inputs)
        self.outputs = session.outputs

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        return self.session.run(feeds)


class _Runner:
    """One backend session plus the float <-> integer adapter; ``run(x)`` maps a batch to the first output."""

    format = ""

    def __init__(self, model: bytes, *, threads: int | None = 1, raw: bool = False) -> None:
        from edgeseal.runtime.backends import select

        if not isinstance(model, (bytes, bytearray, memoryview)):
            raise ConfigError(f"expected model bytes, got {type(model).__name__}")
        self.model = bytes(model)  # the backend may read the weights in place: keep the buffer alive
        self.backend = select(self.format).Session(self.model, self._threads(threads))
        self.io = FloatIO(self._view(self.backend), raw=raw)
        first = next((s for s in self.io.inputs if not s.optional), None)
        if first is None or not self.backend.outputs:
            raise UnsupportedError(f"this {self.format} model has no required input or no output; a runner maps a "
                                   "batch of its first input to its first output (use edgeseal.runtime.load)",
                                   reason="no input/output")
        own = next(s for s in self.backend.inputs if s.name == first.name)  # as the model itself declares it
        self.input_name: str = first.name
        self.input_dtype: str = own.dtype  # what the model itself takes (int8 for full integer)
        self.output_name: str = self.backend.outputs[0].name
        self.output_dtype: str = self.backend.outputs[0].dtype
        self._float_input = first.dtype  # what run(x) converts x to (float32 for a quantized input unless raw)
        self.input_shape: tuple = self._shape(own)

    @staticmethod
    def _threads(threads: int | None) -> int | None:
        return threads

    def _view(self, session: Any) -> Any:
        return session

    def _shape(self, spec: Any) -> tuple:
        return tuple(spec.shape or ())

    def feed(self, x: np.ndarray) -> np.ndarray:
        """``x`` as run(x) hands it over: C-contiguous, cast to the input's dtype when that is a float type
        (float32 for a quantized input unless raw); anything else is checked, not cast."""
        want = np.dtype(self._float_input) if self._float_input in ("float16", "float32", "float64") else None
        return np.ascontiguousarray(x, dtype=want)

    def backend_feeds(self, x: np.ndarray | Mapping[str, Any]) -> dict[str, Any]:
        """The feeds the backend session itself takes for a batch ``x`` of the first input (or a dict of named
        inputs): quantized with the model's own parameters where an input is integer (``runtime.quantio.quantize``,
        unless raw) and checked. Timing ``self.backend.run(feeds)`` measures the model call without the adapter."""
        feeds = dict(x) if isinstance(x, Mapping) else {self.input_name: self.feed(x)}
        specs = {s.name: s for s in self.backend.inputs}
        for name, value in feeds.items():
            spec = specs.get(name)
            if (not self.io.raw and spec is not None and is_quantized(spec) and isinstance(value, np.ndarray)
                    and np.issubdtype(value.dtype, np.floating)):
                feeds[name] = quantize(value, spec)
        return validate_inputs(feeds, self._view(self.backend).inputs)

    def run_feeds(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Every output, name -> value, for a dict of named inputs (float for quantized tensors unless raw)."""
        return self.io.run(feeds)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The first output for one batch ``x`` of the first input."""
        return self.io.run({self.input_name: self.feed(x)})[self.output_name]

    def close(self) -> None:
        self.backend.close()


class OnnxRunner(_Runner):
    """One ONNX Runtime session on the CPU (the runtime's onnxruntime backend)."""

    format = "onnx"

    def run_all(self, x: np.ndarray) -> np.ndarray:
        """The first output for every row of ``x``: in one call, or in the model's fixed batch if it has one."""
        return self.run_batched(x, max(len(x), 1))

    def run_batched(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        fixed = self.input_shape[0] if self.input_shape else None
        if isinstance(fixed, int) and fixed > 0:
            batch_size = fixed
        return np.concatenate([self.run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


class TfliteRunner(_Runner):
    """One LiteRT interpreter (XNNPACK on the CPU, the runtime's litert backend); float in, float out."""

    format = "tflite"

    @staticmethod
    def _threads(threads: int | None) -> int | None:
        return threads or 1

    def _view(self, session: Any) -> Any:
        return _AnyBatch(session)

    def _shape(self, spec: Any) -> tuple:
        # the shape the interpreter is allocated for now: a free dimension is allocated as 1
        return tuple(1 if d is None else int(d) for d in spec.shape or ())

    _fixed_batch = False  # set once the interpreter refused to resize its batch

    def run(self, x: np.ndarray) -> np.ndarray:
        x = self.feed(x)
        y = self.io.run({self.input_name: x})[self.output_name]
        self.input_shape = tuple(x.shape)  # the interpreter is now allocated for this shape
        return y

    def run_all(self, x: np.ndarray) -> np.ndarray:
        """The first output for every row of ``x``: in one call where the interpreter takes that batch,
        else (a model whose graph fixes its batch, e.g. a reshape to (1, n)) in its own batch, padded."""
        if not self._fixed_batch:
            batch = self.input_shape[0] if self.input_shape else None
            try:
                return self.run(x)
            except InvalidInput:
                if len(x) == batch:
                    raise  # not a resize: the input itself is wrong
                self._fixed_batch = True
        return self.run_batched(x)

    def run_batched(self, x: np.ndarray, batch_size: int = 1) -> np.ndarray:
        batch_size = self.input_shape[0] if self.input_shape and self.input_shape[0] > 0 else batch_size
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            if len(xb) < batch_size:  # pad the last batch to the model's fixed batch
                pad = np.zeros((batch_size - len(xb), *xb.shape[1:]), xb.dtype)
                out.append(self.run(np.concatenate([xb, pad]))[: len(xb)])
            else:
                out.append(self.run(xb))
        return np.concatenate(out)


def runner_for(model: bytes, *, threads: int | None = 1, raw: bool = False) -> OnnxRunner | TfliteRunner:
    """An OnnxRunner or TfliteRunner, chosen by the file's bytes."""
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise ConfigError(f"expected model bytes, got {type(model).__name__}")
    cls = TfliteRunner if detect_format(bytes(model)) == "tflite" else OnnxRunner
    return cls(bytes(model), threads=threads, raw=raw)
