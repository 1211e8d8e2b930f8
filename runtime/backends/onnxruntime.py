"""ONNX Runtime backend: the model is handed over as bytes, never as a file."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from .. import codebook
from ..errors import InvalidInput, UnsupportedError
from ..tensors import TensorSpec
from ._onnx_external import LOCATION, externalize
from .onnx_graph import declared_shapes

# Below this size ORT's own parse is cheap and the in-memory weights hand-over saves nothing.
IN_PLACE_MIN_BYTES = 2**20

# ONNX Runtime >= 1.29 on Linux starts 1DS telemetry when it is imported: it writes a device id
# and an event database under ~/.cache/Microsoft/DeveloperTools and $TMPDIR/.ses, and uploads
# process information. A sealed-model runtime writes nothing and calls nobody, so opt out unless
# the application set the variable itself (this only works before onnxruntime is first imported).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

NAME = "onnxruntime"
FORMAT = "onnx"

_ELEM_TYPES = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "bool",
    "string": "string",
    "complex64": "complex64",
    "complex128": "complex128",
    "float8e4m3fn": "float8_e4m3fn",
    "float8e4m3fnuz": "float8_e4m3fnuz",
    "float8e5m2": "float8_e5m2",
    "float8e5m2fnuz": "float8_e5m2fnuz",
    "float4e2m1": "float4_e2m1fn",
    "int4": "int4",
    "uint4": "uint4",
}
# Element types ONNX Runtime loads but its Python API cannot hand over as NumPy arrays (1.32:
# "Numpy_type ... can't be converted" for inputs, "No corresponding Numpy type" for outputs;
# float8_e4m3fn outputs come back as their uint8 bit patterns).
NO_NUMPY = frozenset({"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                      "float4_e2m1fn", "int4", "uint4"})


@lru_cache(maxsize=1)
def problem() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    return None


def _parse(text: str, pos: int, where: str) -> tuple[TensorSpec, int]:
    """Parse one ORT type string (``seq(map(int64,tensor(float)))``) from ``pos`` into an element spec."""
    for prefix, kind in (("tensor(", "tensor"), ("seq(", "sequence"), ("map(", "map"), ("optional(", "optional")):
        if text.startswith(prefix, pos):
            pos += len(prefix)
            break
    else:
        why = " (InferenceSession.run takes no NumPy array for it either)" if text.startswith("sparse") else ""
        raise UnsupportedError(f"{where} has type {text}, which edgeseal does not describe{why}",
                               reason="unsupported type")
    if kind == "tensor":
        close = text.find(")", pos)
        dtype = _ELEM_TYPES.get(text[pos:close]) if close > 0 else None
        if dtype is None:
            raise UnsupportedError(f"{where} has type {text}, an element type edgeseal does not know",
                                   reason="unsupported type")
        return TensorSpec(name="", dtype=dtype, shape=None), close + 1
    key = None
    if kind == "map":
        comma = text.find(",", pos)
        key = _ELEM_TYPES.get(text[pos:comma]) if comma > 0 else None
        if key is None:
            raise UnsupportedError(f"{where} has type {text}, a map key edgeseal does not know",
                                   reason="unsupported type")
        pos = comma + 1
    elem, pos = _parse(text, pos, where)
    if not text.startswith(")", pos):
        raise UnsupportedError(f"{where} has type {text}, which edgeseal cannot parse", reason="unsupported type")
    return TensorSpec(name="", kind=kind, elem=elem, key=key), pos + 1


def _spec(arg, declared: dict[str, bool], role: str, overridable: bool = False) -> TensorSpec:
    """The spec of one ORT NodeArg. ORT says ``[]`` for a scalar and for unknown rank alike;
    ``declared`` (read from the model bytes) tells them apart, and unknown stays unknown."""
    where = f"{role} {arg.name!r}"
    spec, end = _parse(arg.type, 0, where)
    if end != len(arg.type):
        raise UnsupportedError(f"{where} has type {arg.type}, which edgeseal cannot parse", reason="unsupported type")
    dims = list(arg.shape or [])
    shape = None if not dims and not declared.get(arg.name) else tuple(
        d if isinstance(d, int) and d >= 0 else None for d in dims)
    if spec.kind == "tensor":
        return TensorSpec(name=arg.name, dtype=spec.dtype, shape=shape, optional=overridable)
    elem = spec.elem
    if spec.kind == "optional" and elem.kind == "tensor":
        elem = TensorSpec(name="", dtype=elem.dtype, shape=shape)
    return TensorSpec(name=arg.name, kind=spec.kind, elem=elem, key=spec.key,
                      optional=role == "input" and spec.kind == "optional")


def _dtypes(spec: TensorSpec):
    while spec.kind != "tensor":
        if spec.key is not None:
            yield spec.key
        spec = spec.elem
    yield spec.dtype


def raw_session(model: bytes, options: Any = None) -> Any:
    """A plain ``onnxruntime.InferenceSession`` over ``model`` (CPU), with the caller's SessionOptions.

    For what :class:`Session` rightly does not offer: the converters' graph probes (extra outputs with
    optimizations off, initializers fed per run — :mod:`edgeseal.converters.probe`) and a codebook graph on
    weights decoded in memory (:func:`edgeseal.runtime.codebook.session`). Models are *run* through
    :class:`Session` (host: ``converters.infer``; device: ``edgeseal.runtime.load``)."""
    import onnxruntime as ort

    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


class Session:
    """An ``onnxruntime.InferenceSession`` built from bytes. ``run`` is thread-safe (ORT's is).

    Inputs are the graph's inputs, then the initializers a caller may override (optional feeds).
    Outputs come back exactly as ONNX Runtime returns them: arrays, lists for sequences, dicts
    for maps, None for an empty optional.
    """

    def __init__(self, model: bytes, threads: int | None = None, in_place: bool = True) -> None:
        import onnxruntime as ort

        # True when ORT's weights live in ``model`` (see _build), which must then outlive the session.
        self.holds_buffer = False
        self._weights = None
        self._decoded = None  # codebook payloads: the weights decoded at load, wiped at close()
        if self.codebook:
            model = self._decode(model)
        try:
            self._session = self._build(ort, model, threads, in_place)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            self.close()
            raise UnsupportedError(
                f"onnxruntime {ort.__version__} cannot load this model: {str(exc).splitlines()[0][:300]}"
            ) from None
        declared = declared_shapes(model)
        self.inputs = tuple(_spec(a, declared, "input") for a in self._session.get_inputs()) + tuple(
            _spec(a, declared, "input", overridable=True) for a in self._session.get_overridable_initializers())
        self.outputs = tuple(_spec(a, declared, "output") for a in self._session.get_outputs())
        self._names = [o.name for o in self.outputs]
        self._no_numpy = sorted(s.name for s in self.inputs + self.outputs if NO_NUMPY.intersection(_dtypes(s)))
        self._text = [s.name for s in self.inputs if s.kind == "tensor" and s.dtype == "string"]

    codebook = False  # True in onnxruntime_codebook.Session: the payload is an onnx+codebook container

    def _decode(self, payload: bytes) -> bytes:
        """An ``onnx+codebook`` payload (docs/format.md §11): decode its records into one buffer, which ORT reads
        in place as the in-memory file the graph's external initializers name; returns the graph."""
        graph, records = codebook.unpack_model(payload)
        self._decoded, layout = codebook.weights_blob(records)
        try:
            codebook.check_graph(graph, layout)
        except BaseException:
            self.close()
            raise
        return bytes(graph)

    def _build(self, ort, model: bytes, threads: int | None, in_place: bool):
        """The ORT session. A model of a MiB or more is handed over as its graph plus the model's own
        memory, from which ORT reads the large initializers in place (_onnx_external.py): no parse of
        the weights into protobuf strings and no second copy. If ORT refuses that form, or the bytes
        cannot be split, or ``in_place`` is False (ORT then holds its own copies and ``model`` may be
        freed: less memory while the session lives, a slower build), the ordinary session from the bytes."""

        def options(weights=None):
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            if weights is not None:
                opts.add_external_initializers_from_files_in_memory([LOCATION], [weights], [weights.size])
            if self._decoded is not None:
                opts.add_external_initializers_from_files_in_memory(
                    [codebook.EXTERNAL_LOCATION], [self._decoded], [self._decoded.size])
            return opts

        split = None
        if in_place and isinstance(model, bytes) and len(model) >= IN_PLACE_MIN_BYTES and hasattr(ort.SessionOptions, "add_external_initializers_from_files_in_memory"):
            split = externalize(model)
        if split is not None:
            try:
                session = ort.InferenceSession(split[0], options(np.frombuffer(model, dtype=np.uint8)),
                                               providers=["CPUExecutionProvider"])
            except Exception:
                pass
            else:
                self.holds_buffer = True
                self._weights = model  # ORT reads from this memory for as long as the session lives
                return session
        return ort.InferenceSession(model, options(), providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        for name in self._text:  # ORT (1.32) misreads bytes arrays (it reads past each item) instead of refusing
            value = feeds.get(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "S":
                raise InvalidInput(f"input {name!r} has dtype {value.dtype}, onnxruntime takes string tensors as "
                                   "numpy str or object arrays: decode bytes, e.g. np.char.decode(x, 'utf-8')")
        try:
            values = self._session.run(self._names, feeds)
        except Exception as exc:
            message = str(exc).splitlines()[0][:300]
            if self._no_numpy and "numpy" in message.lower():
                raise UnsupportedError(
                    f"onnxruntime's Python API cannot pass {self._no_numpy} (element types NumPy lacks): {message}",
                    reason="unsupported type",
                ) from None
            raise InvalidInput(f"onnxruntime rejected the inputs: {message}") from None
        return dict(zip(self._names, values))

    def close(self) -> None:
        self._session = None
        self._weights = None
        if self._decoded is not None:
            self._decoded.fill(0)  # plaintext weights decoded from a codebook payload (best effort, like PlainBuffer)
            self._decoded = None
