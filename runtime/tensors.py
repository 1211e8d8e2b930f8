"""Typed tensor specs and input validation, done before any backend sees the data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError, InvalidInput

__all__ = ["QuantParams", "TensorSpec", "validate_inputs"]

_DTYPES = frozenset(
    ["float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"]
)


@dataclass(frozen=True, kw_only=True)
class QuantParams:
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "QuantParams":
        return cls(
            scale=tuple(_number(s, "scale") for s in _list(d["scale"], "scale")),
            zero_point=tuple(_int(z, "zero_point") for z in _list(d["zero_point"], "zero_point")),
            axis=None if d.get("axis") is None else _int(d["axis"], "axis"),
        )


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """Name, dtype and shape of one model input or output. ``None`` marks a free dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    quant: QuantParams | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("tensor spec needs a name")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {sorted(_DTYPES)}")
        for dim in self.shape:
            if dim is not None and (not isinstance(dim, int) or dim < 0):
                raise ConfigError(f"tensor {self.name!r}: shape {self.shape} must hold ints >= 0 or None")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.quant is not None:
            d["quant"] = self.quant.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TensorSpec":
        quant = d.get("quant")
        return cls(
            name=_str(d["name"], "name"),
            dtype=_str(d["dtype"], "dtype"),
            shape=tuple(None if s is None else _int(s, "shape") for s in _list(d["shape"], "shape")),
            quant=None if quant is None else QuantParams.from_dict(quant),
        )

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    def check(self, value: Any) -> np.ndarray:
        """Return ``value`` as an array of this spec, or raise :class:`InvalidInput` saying what is off."""
        if not isinstance(value, np.ndarray):
            raise InvalidInput(
                f"input {self.name!r} must be a numpy array of {self.describe()}, got {type(value).__name__}"
            )
        if value.dtype != np.dtype(self.dtype):
            raise InvalidInput(
                f"input {self.name!r} has dtype {value.dtype}, the model expects {self.dtype} "
                f"(convert with .astype(np.{self.dtype}))"
            )
        if value.ndim != len(self.shape) or any(
            want is not None and got != want for got, want in zip(value.shape, self.shape)
        ):
            raise InvalidInput(
                f"input {self.name!r} has shape {tuple(value.shape)}, the model expects {self.describe()}"
            )
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)


# Strict JSON types for from_dict (a manifest is hostile input: no bool-as-int, no 4.7 as a dimension).
def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise ValueError(f"{what}: expected a 64-bit integer, got {value!r:.40}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise ValueError(f"{what}: expected a finite number, got {value!r:.40}")
    return float(value)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected an array, got {type(value).__name__}")
    return value


def validate_inputs(
    inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray, specs: Sequence[TensorSpec]
) -> dict[str, np.ndarray]:
    """Match ``inputs`` (a dict, a sequence in spec order, or one array) to ``specs``."""
    if isinstance(inputs, np.ndarray):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise InvalidInput(f"model has {len(specs)} inputs ({names}); pass a dict name -> array")
        inputs = {specs[0].name: inputs}
    elif isinstance(inputs, (list, tuple)):
        if len(inputs) != len(specs):
            raise InvalidInput(f"model has {len(specs)} inputs, got {len(inputs)} arrays")
        inputs = {spec.name: value for spec, value in zip(specs, inputs)}
    elif not isinstance(inputs, Mapping):
        raise InvalidInput(f"inputs must be a numpy array, a sequence or a dict, got {type(inputs).__name__}")

    expected = {s.name for s in specs}
    unknown = sorted(set(inputs) - expected)
    missing = sorted(expected - set(inputs))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"unknown {unknown}")
        want = "; ".join(s.describe() for s in specs)
        raise InvalidInput(f"input names do not match the model ({', '.join(parts)}); the model takes {want}")
    return {spec.name: spec.check(inputs[spec.name]) for spec in specs}
