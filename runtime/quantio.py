"""Float in, float out for models with quantized integer inputs and outputs (numpy only).

A full-integer TFLite model (ai-edge-quantizer's ``static_wi8_ai8``) takes and returns int8
tensors; each carries its own affine parameters (``real = scale * (q - zero_point)``, per tensor
or per ``axis``), which the backend reports in the tensor specs. :class:`FloatIO` wraps a loaded
model so that callers feed and read float32 by default, converted with those parameters:

    >>> model = edgeseal.runtime.load("mobilenet_int8.eseal", key=..., trusted=[...])
    >>> logits = FloatIO(model).run(x_float)["logits"]        # float32
    >>> raw = FloatIO(model, raw=True).run(x_int8)["logits"]  # the int8 tensor as the model returns it

In float mode, inputs already given in the model's integer dtype pass through unchanged; in raw
mode nothing is converted (a float input to an int8 tensor is rejected, naming the dtype). Tensors without quantization
parameters (float models, integer index inputs) are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput
from .tensors import TensorSpec, validate_inputs

__all__ = ["FloatIO", "quantize", "dequantize", "is_quantized"]


def is_quantized(spec: Any) -> bool:
    """Whether ``spec`` is an integer tensor with affine quantization parameters."""
    q = getattr(spec, "quant", None)
    dtype = getattr(spec, "dtype", None)
    return q is not None and dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)


def _params(spec: TensorSpec, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point shaped to broadcast against a tensor of rank ``ndim``."""
    q = spec.quant
    scale = np.asarray(q.scale, dtype=np.float64)
    zero = np.asarray(q.zero_point, dtype=np.float64)
    if len(scale) > 1:
        if q.axis is None or q.axis >= ndim:
            raise InvalidInput(f"tensor {spec.name!r} is quantized per channel along axis {q.axis}, "
                               f"but the value has rank {ndim}")
        shape = [1] * ndim
        shape[q.axis] = len(scale)
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return scale, zero


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float data to the spec's integer dtype: ``clip(round(x / scale) + zero_point)`` (round half to even)."""
    if not is_quantized(spec):
        raise InvalidInput(f"tensor {spec.name!r} ({spec.dtype}) has no quantization parameters to quantize with")
    want = np.dtype(spec.dtype)
    x = np.asarray(x, dtype=np.float64)
    scale, zero = _params(spec, x.ndim)
    info = np.iinfo(want)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(want)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The spec's integer data back to float32: ``scale * (q - zero_point)``."""
    if not is_quantized(spec):
        raise InvalidInput(f"tensor {spec.name!r} ({spec.dtype}) has no quantization parameters to dequantize with")
    q = np.asarray(q)
    scale, zero = _params(spec, q.ndim)
    return (scale * (q.astype(np.float64) - zero)).astype(np.float32)


def _float_spec(spec: TensorSpec) -> TensorSpec:
    return TensorSpec(name=spec.name, dtype="float32", shape=spec.shape, optional=spec.optional)


class FloatIO:
    """A loaded model (anything with ``inputs``, ``outputs`` and ``run``) that takes and returns float32.

    ``inputs`` / ``outputs`` describe what callers exchange: quantized integer tensors appear as
    float32 (``raw=False``, the default) or unchanged (``raw=True``). ``model`` stays the caller's to close.
    """

    def __init__(self, model: Any, *, raw: bool = False) -> None:
        self.model = model
        self.raw = bool(raw)
        self._in = {s.name: s for s in model.inputs}
        self._out = {s.name: s for s in model.outputs}
        convert = (lambda s: s) if self.raw else (lambda s: _float_spec(s) if is_quantized(s) else s)
        self.inputs: tuple[TensorSpec, ...] = tuple(convert(s) for s in model.inputs)
        self.outputs: tuple[TensorSpec, ...] = tuple(convert(s) for s in model.outputs)

    @property
    def quantized_io(self) -> bool:
        """Whether any input or output is a quantized integer tensor (whether there is anything to convert)."""
        return any(is_quantized(s) for s in (*self._in.values(), *self._out.values()))

    def run(self, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray) -> dict[str, Any]:
        """Quantize float inputs of quantized integer tensors with their own parameters, run, and (unless
        ``raw``) dequantize such outputs to float32."""
        specs = tuple(self._in.values())
        if isinstance(inputs, np.ndarray):
            names = [s.name for s in specs if not s.optional]
            if len(names) != 1:
                raise InvalidInput(f"model has {len(names)} required inputs ({', '.join(names)}); pass a dict name -> array")
            inputs = {names[0]: inputs}
        elif isinstance(inputs, (list, tuple)):
            inputs = {s.name: v for s, v in zip(specs, inputs)}
        elif not isinstance(inputs, Mapping):
            raise InvalidInput(f"inputs must be a numpy array, a sequence or a dict, got {type(inputs).__name__}")
        feeds = {}
        for name, value in inputs.items():
            spec = self._in.get(name)
            if (not self.raw and spec is not None and is_quantized(spec) and isinstance(value, np.ndarray)
                    and np.issubdtype(value.dtype, np.floating)):
                value = quantize(value, spec)
            feeds[name] = value
        validate_inputs(feeds, specs)  # names, dtypes and shapes checked before the backend sees anything
        outputs = self.model.run(feeds)
        if self.raw:
            return outputs
        return {name: dequantize(value, self._out[name]) if name in self._out and is_quantized(self._out[name])
                and isinstance(value, np.ndarray) else value for name, value in outputs.items()}
