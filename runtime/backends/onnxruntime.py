"""ONNX Runtime backend: the model is handed over as bytes, never as a file."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from ..errors import InvalidInput, UnsupportedError
from ..tensors import TensorSpec

# ONNX Runtime >= 1.29 on Linux starts 1DS telemetry when it is imported: it writes a device id
# and an event database under ~/.cache/Microsoft/DeveloperTools and $TMPDIR/.ses, and uploads
# process information. A sealed-model runtime writes nothing and calls nobody, so opt out unless
# the application set the variable itself (this only works before onnxruntime is first imported).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

NAME = "onnxruntime"
FORMAT = "onnx"

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


@lru_cache(maxsize=1)
def problem() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    return None


def _spec(arg) -> TensorSpec:
    dtype = _ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise UnsupportedError(f"tensor {arg.name!r} has type {arg.type}, which edgeseal does not pass through")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape)


class Session:
    """An ``onnxruntime.InferenceSession`` built from bytes. ``run`` is thread-safe (ORT's is)."""

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise UnsupportedError(
                f"onnxruntime {ort.__version__} cannot load this model: {str(exc).splitlines()[0][:300]}"
            ) from None
        self.inputs = tuple(_spec(a) for a in self._session.get_inputs())
        self.outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._names, feeds)
        except Exception as exc:
            raise InvalidInput(f"onnxruntime rejected the inputs: {str(exc).splitlines()[0][:300]}") from None
        return dict(zip(self._names, values))

    def close(self) -> None:
        self._session = None
