"""Typed tensor specs and input validation, done before any backend sees the data.

A :class:`TensorSpec` describes one model input or output the way the manifest
records it (docs/format.md §2.2): a tensor (``dtype`` + ``shape``), or a
sequence, map or optional value wrapping further specs. ``from_dict`` is a
strict validator for specs read from a file; ``validate_inputs`` checks what a
spec knows (names, dtypes, ranks, fixed dims) and hands everything else to the
backend unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError, InvalidInput

__all__ = ["DTYPES", "KINDS", "QuantParams", "TensorSpec", "validate_inputs"]

# Every element type a spec may name. NumPy dtype names where NumPy has the type; "string" for
# text (NumPy str/object arrays); the ml_dtypes names for the types NumPy lacks (bfloat16, float8,
# int4 ...). Whether a backend can *feed* a type is the backend's business (docs/format.md §2.2).
_NUMPY_DTYPES = (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_EXTENDED_DTYPES = (
    "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
    "float4_e2m1fn", "int4", "uint4",
)
DTYPES = frozenset(_NUMPY_DTYPES + _EXTENDED_DTYPES + ("string",))
KINDS = ("tensor", "sequence", "map", "optional")
# ONNX map keys are integers or strings.
_MAP_KEYS = frozenset(("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "string"))
_INT_RANGES = {
    "int4": (-8, 7), "uint4": (0, 15),
    **{name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
       for name in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")},
}
MAX_DIM = 2**62
MAX_DEPTH = 8  # nesting of sequence/map/optional specs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class QuantParams:
    """Affine quantization of a tensor: real = scale * (q - zero_point); per-tensor, or per ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if not self.scale or len(self.scale) != len(self.zero_point):
            raise ConfigError(f"quantization needs as many zero points as scales (>= 1), got "
                              f"{len(self.scale)} scales and {len(self.zero_point)} zero points")
        if not all(_is_number(s) and math.isfinite(s) and s > 0 for s in self.scale):
            raise ConfigError(f"quantization scales must be finite numbers > 0, got {list(self.scale)}")
        if not all(_is_int(z) for z in self.zero_point):
            raise ConfigError(f"quantization zero points must be integers, got {list(self.zero_point)}")
        if self.axis is not None and (not _is_int(self.axis) or self.axis < 0):
            raise ConfigError(f"quantization axis must be an integer >= 0 or None, got {self.axis!r}")
        if len(self.scale) > 1 and self.axis is None:
            raise ConfigError(f"per-channel quantization ({len(self.scale)} scales) needs an axis")

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}

    @classmethod
    def from_dict(cls, d: Any) -> "QuantParams":
        """Strictly parse the manifest form; ValueError/TypeError says what is malformed."""
        if not isinstance(d, Mapping):
            raise TypeError(f"quant must be an object, got {type(d).__name__}")
        for member in ("scale", "zero_point"):
            if member not in d:
                raise ValueError(f"quant is missing member {member!r}")
            if not isinstance(d[member], list):
                raise TypeError(f"quant.{member} must be an array, got {type(d[member]).__name__}")
        for s in d["scale"]:
            if not _is_number(s):
                raise TypeError(f"quant.scale holds {s!r}; scales are numbers")
        for z in d["zero_point"]:
            if not _is_int(z):
                raise TypeError(f"quant.zero_point holds {z!r}; zero points are integers")
        axis = d.get("axis")
        if axis is not None and not _is_int(axis):
            raise TypeError(f"quant.axis must be an integer or null, got {axis!r}")
        try:
            return cls(scale=tuple(float(s) for s in d["scale"]), zero_point=tuple(d["zero_point"]), axis=axis)
        except (ConfigError, OverflowError) as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One model input or output.

    ``kind`` is ``"tensor"`` (``dtype`` + ``shape``; ``shape=None`` is unknown rank, a ``None``
    dim a free one), ``"sequence"`` or ``"optional"`` (of ``elem``), or ``"map"`` (``key`` dtype
    to ``elem`` values). ``optional=True`` marks an input the caller may leave out (an ONNX
    optional input, or an initializer the model lets the caller override). Element specs nested
    in ``elem`` have no name.
    """

    name: str
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    quant: QuantParams | None = None
    kind: str = "tensor"
    elem: "TensorSpec | None" = None
    key: str | None = None
    optional: bool = False
    _numpy: np.dtype | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f"tensor {self.name!r}" if self.name else "element spec"
        if not isinstance(self.name, str):
            raise ConfigError(f"tensor spec name must be a string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"{label}: kind {self.kind!r} is not one of {list(KINDS)}")
        if not isinstance(self.optional, bool):
            raise ConfigError(f"{label}: optional must be true or false, got {self.optional!r}")
        if self.kind == "tensor":
            self._check_tensor(label)
            numpy = np.dtype(object) if self.dtype == "string" else (
                np.dtype(self.dtype) if self.dtype in _NUMPY_DTYPES else None)
            object.__setattr__(self, "_numpy", numpy)  # run checks against it on every call
        else:
            if self.dtype is not None or self.shape is not None or self.quant is not None:
                raise ConfigError(f"{label}: a {self.kind} spec has no dtype, shape or quant (they go in elem)")
            if not isinstance(self.elem, TensorSpec) or self.elem.name or self.elem.optional:
                raise ConfigError(f"{label}: a {self.kind} spec needs an unnamed element spec in elem")
            if (self.key is not None) != (self.kind == "map"):
                raise ConfigError(f"{label}: key (the map's key dtype) belongs to map specs only")
            if self.kind == "map" and self.key not in _MAP_KEYS:
                raise ConfigError(f"{label}: map key dtype {self.key!r} is not one of {sorted(_MAP_KEYS)}")
            if self.depth() > MAX_DEPTH:
                raise ConfigError(f"{label}: specs nest at most {MAX_DEPTH} levels deep")

    def _check_tensor(self, label: str) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"{label}: dtype {self.dtype!r} is not one of {sorted(DTYPES)}")
        if self.elem is not None or self.key is not None:
            raise ConfigError(f"{label}: a tensor spec has no elem or key")
        if isinstance(self.shape, list):
            object.__setattr__(self, "shape", tuple(self.shape))
        if self.shape is not None:
            if not isinstance(self.shape, tuple):
                raise ConfigError(f"{label}: shape must be a tuple or None, got {type(self.shape).__name__}")
            for dim in self.shape:
                if dim is not None and (not _is_int(dim) or not 0 <= dim <= MAX_DIM):
                    raise ConfigError(f"{label}: shape {self.shape} must hold integers 0 <= n <= 2**62 or None")
        q = self.quant
        if q is None:
            return
        if not isinstance(q, QuantParams):
            raise ConfigError(f"{label}: quant must be QuantParams or None")
        if self.dtype not in _INT_RANGES:
            raise ConfigError(f"{label}: quantization parameters need an integer dtype, not {self.dtype}")
        low, high = _INT_RANGES[self.dtype]
        if not all(low <= z <= high for z in q.zero_point):
            raise ConfigError(f"{label}: zero points {list(q.zero_point)} are outside the {self.dtype} range "
                              f"[{low}, {high}]")
        if q.axis is not None and self.shape is not None:
            if q.axis >= len(self.shape):
                raise ConfigError(f"{label}: quantization axis {q.axis} is out of range for rank {len(self.shape)}")
            channels = self.shape[q.axis]
            if len(q.scale) > 1 and channels is not None and channels != len(q.scale):
                raise ConfigError(f"{label}: {len(q.scale)} scales for axis {q.axis} of size {channels}")

    # -- manifest form -----------------------------------------------------------------

    def depth(self) -> int:
        return 1 if self.elem is None else 1 + self.elem.depth()

    def to_dict(self) -> dict[str, Any]:
        """The manifest form. A plain tensor keeps the v1 members (name, dtype, shape, quant?)."""
        d: dict[str, Any] = {"name": self.name} if self.name else {}
        if self.kind == "tensor":
            d["dtype"] = self.dtype
            d["shape"] = None if self.shape is None else list(self.shape)
            if self.quant is not None:
                d["quant"] = self.quant.to_dict()
        else:
            d["kind"] = self.kind
            if self.key is not None:
                d["key"] = self.key
            d["elem"] = self.elem.to_dict()
        if self.optional:
            d["optional"] = True
        return d

    @classmethod
    def from_dict(cls, d: Any, *, nested: bool = False, _depth: int = 1) -> "TensorSpec":
        """Strictly parse the manifest form (docs/format.md §2.2).

        Raises TypeError for a member of the wrong JSON type and ValueError for a missing member
        or a value out of range; the message names the spec and the member. Members this version
        does not know are ignored (a later writer may add optional ones).
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"a tensor spec must be an object, got {type(d).__name__}")
        if nested:
            name = ""
            if "name" in d:
                raise ValueError("an element spec (elem) has no name")
        else:
            if "name" not in d:
                raise ValueError("tensor spec is missing member 'name'")
            name = d["name"]
            if not isinstance(name, str):
                raise TypeError(f"tensor spec name must be a string, got {name!r}")
            if not name:
                raise ValueError("tensor spec name is empty")
        label = f"tensor spec {name!r}" if name else "element spec"
        kind = d.get("kind", "tensor")
        if not isinstance(kind, str):
            raise TypeError(f"{label}: kind must be a string, got {kind!r}")
        if kind not in KINDS:
            raise ValueError(f"{label}: kind {kind!r} is not one of {list(KINDS)}")
        optional = d.get("optional", False)
        if not isinstance(optional, bool):
            raise TypeError(f"{label}: optional must be true or false, got {optional!r}")
        if nested and optional:
            raise ValueError(f"{label}: only inputs and outputs can be optional")
        fields: dict[str, Any] = {"name": name, "kind": kind, "optional": optional}
        if kind == "tensor":
            fields.update(_tensor_fields(d, label))
        else:
            for member in ("dtype", "shape", "quant"):
                if member in d:
                    raise ValueError(f"{label}: a {kind} spec has no {member!r} (it goes in elem)")
            if _depth >= MAX_DEPTH:
                raise ValueError(f"{label}: specs nest at most {MAX_DEPTH} levels deep")
            if "elem" not in d:
                raise ValueError(f"{label}: a {kind} spec is missing member 'elem'")
            fields["elem"] = cls.from_dict(d["elem"], nested=True, _depth=_depth + 1)
            if kind == "map":
                if "key" not in d:
                    raise ValueError(f"{label}: a map spec is missing member 'key'")
                if not isinstance(d["key"], str):
                    raise TypeError(f"{label}: key must be a dtype name, got {d['key']!r}")
                fields["key"] = d["key"]
            elif "key" in d:
                raise ValueError(f"{label}: only map specs have a 'key'")
        try:
            return cls(**fields)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    # -- what run needs -------------------------------------------------------------------

    @property
    def numpy_dtype(self) -> np.dtype | None:
        """The NumPy dtype of a tensor spec where NumPy has one (``object`` for string), else None."""
        return self._numpy

    def type_str(self) -> str:
        """``float32[?, 16]``, ``float32[*]`` (unknown rank), ``sequence<float32[*]>``, ``map<string, ...>``."""
        if self.kind == "tensor":
            dims = "*" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
            return f"{self.dtype}[{dims}]"
        inner = self.elem.type_str()
        return f"map<{self.key}, {inner}>" if self.kind == "map" else f"{self.kind}<{inner}>"

    def describe(self) -> str:
        return f"{self.name}: {self.type_str()}" + (" (optional)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """Return ``value`` ready for the backend, or raise :class:`InvalidInput` saying what is off.

        Tensors: NumPy arrays must have the spec's dtype (byte order aside: other byte orders are
        converted, values unchanged), rank and fixed dims; lists and Python scalars are converted
        to the spec's dtype as ONNX Runtime converts lists. Sequences and maps go to the backend
        unchanged; an optional value is checked as its element when it is not None.
        """
        if self.kind == "optional":
            return None if value is None else _named(self.elem, self.name).check(value)
        if self.kind != "tensor":
            return value
        want = self.numpy_dtype
        if isinstance(value, (list, tuple, bool, int, float, str)):
            if want is None:
                return value  # NumPy has no such type to convert to: the backend decides, as it would unwrapped
            value = _from_python(self, value, want)
        elif isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise InvalidInput(f"input {self.name!r} must be a numpy array (or a list) of {self.type_str()}, "
                               f"got {type(value).__name__}")
        value = self._check_dtype(value, want)
        if self.shape is not None and (value.ndim != len(self.shape) or any(
                w is not None and g != w for g, w in zip(value.shape, self.shape))):
            raise InvalidInput(
                f"input {self.name!r} has shape {tuple(value.shape)}, the model expects {self.describe()}"
            )
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)

    def _check_dtype(self, value: np.ndarray, want: np.dtype | None) -> np.ndarray:
        got = value.dtype
        if self.dtype == "string":
            if got.kind in "UOS":  # str, object, bytes: which of them a backend takes is its business
                return value
            raise InvalidInput(f"input {self.name!r} has dtype {got}, the model expects string "
                               "(a numpy str, bytes or object array)")
        if want is None:  # bfloat16, float8, int4: ml_dtypes arrays name the type; the backend decides
            if got.name == self.dtype:
                return value
        elif got == want:
            return value
        elif got.byteorder not in "=|" and got.newbyteorder("=") == want:
            return value.astype(want)  # same values, native byte order
        raise InvalidInput(
            f"input {self.name!r} has dtype {got}, the model expects {self.dtype} "
            f"(convert with .astype(np.{self.dtype}))" if want is not None else
            f"input {self.name!r} has dtype {got}, the model expects {self.dtype}"
        )


def _named(spec: TensorSpec, name: str) -> TensorSpec:
    return TensorSpec(name=name, dtype=spec.dtype, shape=spec.shape, quant=spec.quant, kind=spec.kind,
                      elem=spec.elem, key=spec.key)


def _from_python(spec: TensorSpec, value: Any, want: np.dtype) -> np.ndarray:
    """A list (or Python scalar) as the array ONNX Runtime makes of it: ``np.array(value, dtype)``."""
    try:
        return np.array(value, dtype=want)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"input {spec.name!r}: cannot convert the {type(value).__name__} to {spec.dtype} "
                           f"({exc}); pass a numpy array of {spec.type_str()}") from None


def _tensor_fields(d: Mapping[str, Any], label: str) -> dict[str, Any]:
    for member in ("elem", "key"):
        if member in d:
            raise ValueError(f"{label}: a tensor spec has no {member!r}")
    for member in ("dtype", "shape"):
        if member not in d:
            raise ValueError(f"{label}: missing member {member!r}")
    dtype = d["dtype"]
    if not isinstance(dtype, str):
        raise TypeError(f"{label}: dtype must be a string, got {dtype!r}")
    if dtype not in DTYPES:
        raise ValueError(f"{label}: dtype {dtype!r} is not one of {sorted(DTYPES)}")
    shape = d["shape"]
    if shape is not None:
        if not isinstance(shape, list):
            raise TypeError(f"{label}: shape must be an array or null, got {shape!r}")
        for i, dim in enumerate(shape):
            if dim is None:
                continue
            if not _is_int(dim):
                raise TypeError(f"{label}: shape[{i}] must be an integer or null, got {dim!r}")
            if not 0 <= dim <= MAX_DIM:
                raise ValueError(f"{label}: shape[{i}] = {dim} is outside 0 ... 2**62")
        shape = tuple(shape)
    quant = d.get("quant")
    try:
        quant = None if quant is None else QuantParams.from_dict(quant)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{label}: {exc}") from None
    return {"dtype": dtype, "shape": shape, "quant": quant}


def validate_inputs(
    inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray, specs: Sequence[TensorSpec]
) -> dict[str, Any]:
    """Match ``inputs`` (a dict, a sequence in spec order, or one array) to ``specs``.

    Optional inputs may be left out (or given as None); they are then not fed.
    """
    required = [s for s in specs if not s.optional]
    if isinstance(inputs, np.ndarray):
        if len(required) != 1:
            names = ", ".join(s.name for s in required)
            raise InvalidInput(f"model has {len(required)} required inputs ({names}); pass a dict name -> array")
        inputs = {required[0].name: inputs}
    elif isinstance(inputs, (list, tuple)):
        if not len(required) <= len(inputs) <= len(specs):
            count = f"{len(required)}" if len(required) == len(specs) else f"{len(required)} to {len(specs)}"
            raise InvalidInput(f"model takes {count} inputs in the order {[s.name for s in specs]}, "
                               f"got {len(inputs)} values")
        inputs = {spec.name: value for spec, value in zip(specs, inputs)}
    elif not isinstance(inputs, Mapping):
        raise InvalidInput(f"inputs must be a numpy array, a sequence or a dict, got {type(inputs).__name__}")

    given = {name for name, value in inputs.items() if value is not None}
    expected = {s.name for s in specs}
    unknown = sorted(set(inputs) - expected, key=str)
    missing = sorted(s.name for s in required if s.name not in given)
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"unknown {unknown}")
        want = "; ".join(s.describe() for s in specs)
        raise InvalidInput(f"input names do not match the model ({', '.join(parts)}); the model takes {want}")
    return {spec.name: spec.check(inputs[spec.name]) for spec in specs if spec.name in given}
