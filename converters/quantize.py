"""int8 post-training quantization, driven by edgeseal config objects.

* ONNX static int8 (QDQ) with ONNX Runtime's quantization tool: MinMax,
  percentile or entropy calibration on user data, per-channel weights,
  symmetric/asymmetric ranges, nodes or op types kept in float.
* ONNX dynamic int8 (weights int8 offline, activations quantized at run time)
  for transformer and RNN models.
* TFLite static int8 (int8 weights and activations for every op the quantizer
  supports) with ai-edge-quantizer and a representative dataset.

The ORT tool takes string-keyed ``extra_options``; edgeseal keeps those out of
its API and maps typed fields onto them here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .common import as_enum
from .export import quiet

__all__ = [
    "Calibration",
    "IntType",
    "OnnxStaticConfig",
    "OnnxDynamicConfig",
    "TfliteInt8Config",
    "CalibrationData",
    "quantize_onnx_static",
    "quantize_onnx_dynamic",
    "quantize_tflite_int8",
    "preprocess_onnx",
    "as_feeds",
    "tflite_op_outputs",
]

#: a float batch ``(N, ...)`` for single-input models, or a sequence of feed dicts name -> array
CalibrationData = Union[np.ndarray, Sequence[Mapping[str, np.ndarray]]]


class Calibration(str, enum.Enum):
    """How activation ranges are chosen from calibration data."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"


class IntType(str, enum.Enum):
    INT8 = "int8"
    UINT8 = "uint8"


def _tuple_of_str(value: Iterable[str], field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f"{field} must be a list of names, not the single string {value!r}")
    out = tuple(value)
    for v in out:
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{field} must hold non-empty strings, got {v!r}")
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnnxStaticConfig:
    """Static int8 (QDQ) for ONNX Runtime.

    Defaults follow what ORT's CPU kernels and XNNPACK on ARM run fast: int8 symmetric per-channel
    weights, uint8 asymmetric activations. ``exclude_nodes`` / ``exclude_op_types`` stay float;
    ``op_types`` (if given) limits quantization to those op types. ``samples`` caps the calibration set.
    ``preprocess`` runs ORT's ``quant_pre_process`` (shape inference + graph optimization) first.
    """

    calibration: Calibration = Calibration.MINMAX
    percentile: float = 99.999
    per_channel: bool = True
    activation_type: IntType = IntType.UINT8
    weight_type: IntType = IntType.INT8
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    op_types: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    samples: int = 256
    preprocess: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration", as_enum(Calibration, self.calibration, "calibration"))
        object.__setattr__(self, "activation_type", as_enum(IntType, self.activation_type, "activation_type"))
        object.__setattr__(self, "weight_type", as_enum(IntType, self.weight_type, "weight_type"))
        for name in ("op_types", "exclude_nodes", "exclude_op_types"):
            object.__setattr__(self, name, _tuple_of_str(getattr(self, name), name))
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile={self.percentile} must be in (50, 100]")
        if self.samples < 1:
            raise ConfigError(f"samples={self.samples} must be >= 1")

    def replace(self, **changes: Any) -> "OnnxStaticConfig":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnnxDynamicConfig:
    """Dynamic int8 for ONNX Runtime: int8 weights, activations quantized per call.

    ``per_channel`` weights matter a lot for transformers (one scale per output column).
    ``op_types`` defaults to MatMul (ORT rewrites Gemm as MatMul + Add first, so linear layers are
    covered; its dynamic kernels also cover Conv, Gather, LSTM, Attention); ``exclude_nodes`` stay float.
    """

    per_channel: bool = True
    weight_type: IntType = IntType.INT8
    op_types: tuple[str, ...] = ("MatMul",)
    exclude_nodes: tuple[str, ...] = ()
    preprocess: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_type", as_enum(IntType, self.weight_type, "weight_type"))
        for name in ("op_types", "exclude_nodes"):
            object.__setattr__(self, name, _tuple_of_str(getattr(self, name), name))

    def replace(self, **changes: Any) -> "OnnxDynamicConfig":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TfliteInt8Config:
    """Full static int8 for TFLite with ai-edge-quantizer: int8 weights and activations.

    ``algorithm`` is ai-edge-quantizer's range algorithm (``min_max_uniform_quantize`` is its
    standard). ``samples`` caps the representative dataset.
    """

    algorithm: str = "min_max_uniform_quantize"
    range_update: str = "minmax"  # "minmax": true extremes over all samples; "moving_average": the quantizer's default
    samples: int = 256
    keep_float: tuple[str, ...] = ()  # output tensor names of ops to leave in float (see tflite_op_outputs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_float", _tuple_of_str(self.keep_float, "keep_float"))
        if self.samples < 1:
            raise ConfigError(f"samples={self.samples} must be >= 1")
        if not self.algorithm:
            raise ConfigError("algorithm must name an ai-edge-quantizer algorithm")
        if self.range_update not in ("minmax", "moving_average"):
            raise ConfigError(f"range_update={self.range_update!r} must be 'minmax' or 'moving_average'")


# --------------------------------------------------------------------------- ONNX


def _input_specs(model: bytes) -> list[tuple[str, tuple[Any, ...]]]:
    import onnx

    proto = onnx.load_from_string(model)
    inits = {i.name for i in proto.graph.initializer}
    specs = []
    for inp in proto.graph.input:
        if inp.name in inits:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim)
        specs.append((inp.name, dims))
    return specs


def as_feeds(model: bytes, data: CalibrationData, *, limit: int, batch_size: int = 32) -> list[dict[str, np.ndarray]]:
    """Turn calibration data into ONNX feed dicts, checking names, ranks and fixed dimensions."""
    specs = _input_specs(model)
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise ConfigError(
                f"the model has {len(specs)} inputs ({', '.join(n for n, _ in specs)}); give calibration data "
                "as a list of dicts name -> array"
            )
        name, dims = specs[0]
        if dims and isinstance(dims[0], int) and dims[0] > 0:
            batch_size = dims[0]  # a fixed-batch model takes exactly that many samples per run
        x = np.asarray(data, dtype=np.float32)[:limit]
        x = x[: len(x) - len(x) % batch_size] if len(x) >= batch_size else x
        feeds = [{name: x[i : i + batch_size]} for i in range(0, len(x), batch_size)]
    else:
        feeds = [dict(f) for f in list(data)[:limit]]
    if not feeds:
        raise ConfigError("calibration data is empty; give at least one sample")
    for feed in feeds:
        names = {n for n, _ in specs}
        if set(feed) != names:
            raise ConfigError(f"calibration data has inputs {sorted(feed)} but the model expects {sorted(names)}")
        for name, dims in specs:
            arr = np.asarray(feed[name])
            bad = arr.ndim != len(dims) or any(d is not None and d > 0 and d != s for d, s in zip(dims[1:], arr.shape[1:]))
            if bad:
                want = "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"
                raise ConfigError(
                    f"calibration data for input {name!r} has shape {arr.shape} but the model expects {want}; "
                    "give samples shaped like the model input"
                )
    return feeds


class _Reader:
    """ORT CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


def preprocess_onnx(model: bytes) -> bytes:
    """ORT's ``quant_pre_process``: symbolic shape inference and graph optimization before quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgeseal-q-") as tmp:
        src, dst = Path(tmp, "in.onnx"), Path(tmp, "out.onnx")
        src.write_bytes(model)
        # When symbolic shape inference gives up, ORT saves a debug copy of the model (with its weights
        # as a second file) into the *current* directory; run it from our temp dir so nothing lands there.
        with quiet(), _working_directory(tmp):
            try:
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
            except Exception:  # symbolic inference gives up on some exported graphs; ONNX's own is enough
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return dst.read_bytes()


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _qtype(t: IntType) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8 if t is IntType.INT8 else QuantType.QUInt8


def _op_types_to_quantize(model: bytes, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[str] | None:
    if not exclude:
        return list(include) or None
    from onnxruntime.quantization.registry import QDQRegistry

    from .export import onnx_ops

    base = list(include) or [op for op in onnx_ops(model) if op in QDQRegistry]
    return [op for op in base if op not in exclude]


def quantize_onnx_static(model: bytes, calibration_data: CalibrationData, config: OnnxStaticConfig | None = None) -> bytes:
    """Static QDQ int8 of an ONNX model with ONNX Runtime's ``quantize_static``; returns the new model bytes."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    config = config or OnnxStaticConfig()
    feeds = as_feeds(model, calibration_data, limit=config.samples)
    if config.preprocess:
        model = preprocess_onnx(model)
    method = {
        Calibration.MINMAX: CalibrationMethod.MinMax,
        Calibration.PERCENTILE: CalibrationMethod.Percentile,
        Calibration.ENTROPY: CalibrationMethod.Entropy,
    }[config.calibration]
    extra: dict[str, Any] = {
        "ActivationSymmetric": config.symmetric_activations,
        "WeightSymmetric": config.symmetric_weights,
    }
    if config.calibration is Calibration.PERCENTILE:
        extra["CalibPercentile"] = config.percentile
    with tempfile.TemporaryDirectory(prefix="edgeseal-q-") as tmp:
        src, dst = Path(tmp, "in.onnx"), Path(tmp, "out.onnx")
        src.write_bytes(model)
        # When symbolic shape inference gives up, ORT saves a debug copy of the model (with its weights
        # as a second file) into the *current* directory; run it from our temp dir so nothing lands there.
        with quiet(), _working_directory(tmp):
            quantize_static(
                str(src),
                str(dst),
                _Reader(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=_op_types_to_quantize(model, config.op_types, config.exclude_op_types),
                per_channel=config.per_channel,
                activation_type=_qtype(config.activation_type),
                weight_type=_qtype(config.weight_type),
                nodes_to_exclude=list(config.exclude_nodes) or None,
                calibrate_method=method,
                extra_options=extra,
            )
        return dst.read_bytes()


def quantize_onnx_dynamic(model: bytes, config: OnnxDynamicConfig | None = None) -> bytes:
    """Dynamic int8 of an ONNX model with ONNX Runtime's ``quantize_dynamic``; returns the new model bytes."""
    from onnxruntime.quantization import quantize_dynamic

    config = config or OnnxDynamicConfig()
    if config.preprocess:
        model = preprocess_onnx(model)
    with tempfile.TemporaryDirectory(prefix="edgeseal-q-") as tmp:
        src, dst = Path(tmp, "in.onnx"), Path(tmp, "out.onnx")
        src.write_bytes(model)
        # When symbolic shape inference gives up, ORT saves a debug copy of the model (with its weights
        # as a second file) into the *current* directory; run it from our temp dir so nothing lands there.
        with quiet(), _working_directory(tmp):
            quantize_dynamic(
                str(src),
                str(dst),
                op_types_to_quantize=list(config.op_types),
                per_channel=config.per_channel,
                weight_type=_qtype(config.weight_type),
                nodes_to_exclude=list(config.exclude_nodes) or None,
            )
        return dst.read_bytes()


# --------------------------------------------------------------------------- TFLite


def quantize_tflite_int8(model: bytes, representative: np.ndarray, config: TfliteInt8Config | None = None) -> bytes:
    """Static int8 TFLite with ai-edge-quantizer (``static_wi8_ai8``) calibrated on ``representative``.

    ``model`` is a float TFLite flatbuffer with one signature and one input; ``representative`` is a
    float batch shaped like that input (its batch dimension is the model's fixed batch).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .probe import tflite_graph

    config = config or TfliteInt8Config()
    interp = tflite_graph(model)
    sigs = interp.get_signature_list()
    if len(sigs) != 1:
        raise UnsupportedError(f"TFLite model has {len(sigs)} signatures; int8 calibration needs exactly one")
    sig_name, sig = next(iter(sigs.items()))
    if len(sig["inputs"]) != 1:
        raise UnsupportedError("int8 TFLite calibration from an array needs a single-input model")
    in_name = sig["inputs"][0]
    shape = tuple(int(d) for d in interp.get_signature_runner(sig_name).get_input_details()[in_name]["shape"])
    x = np.asarray(representative, dtype=np.float32)[: config.samples]
    if x.ndim != len(shape) or tuple(x.shape[1:]) != shape[1:]:
        want = "(N, " + ", ".join(str(d) for d in shape[1:]) + ")"
        raise ConfigError(
            f"representative data has shape {x.shape} but the TFLite input {in_name!r} is {shape}; give {want}"
        )
    batch = shape[0]
    samples = [{in_name: x[i : i + batch]} for i in range(0, len(x) - batch + 1, batch)]
    if not samples:
        raise ConfigError(f"need at least {batch} representative samples")
    import re

    from ai_edge_quantizer import quantizer, recipe, recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName

    try:
        algo = recipe.AlgorithmName(config.algorithm)
    except ValueError:
        choices = ", ".join(a.value for a in recipe.AlgorithmName)
        raise ConfigError(f"algorithm={config.algorithm!r} is not an ai-edge-quantizer algorithm; one of {choices}") from None
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(
        regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8, algorithm_key=algo
    )
    ops = dict((name, op) for op, name in tflite_op_outputs(model))
    for name in config.keep_float:
        if name not in ops:
            raise ConfigError(f"keep_float names {name!r}, which is not an op output of this model; see tflite_op_outputs()")
        manager.add_quantization_config(
            regex=f"^{re.escape(name)};",  # the op scope is its output names joined by ";" plus ";"
            operation_name=TFLOperationName(ops[name]),
            algorithm_key=recipe.AlgorithmName.NO_QUANTIZE,
        )
    with quiet():
        q = quantizer.Quantizer(bytearray(model), manager.get_quantization_recipe())
        if config.range_update == "minmax":
            # ai-edge-quantizer's default moving-average ranges clip the largest activations (e.g. the
            # top logit of confident samples, turning argmax into ties); use the true min/max instead,
            # as ONNX Runtime's MinMax calibration does.
            from ai_edge_quantizer import calibrator
            from ai_edge_quantizer.utils import qsv_utils

            cal = calibrator.Calibrator(bytes(model), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
            cal.calibrate({sig_name: samples}, q._recipe_manager)
            calib = cal.get_model_qsvs()
        else:
            calib = q.calibrate({sig_name: samples}, num_threads=1)
        result = q.quantize(calib, enable_progress_report=False)
    return bytes(result.quantized_model)


def tflite_op_outputs(model: bytes) -> list[tuple[str, str]]:
    """(builtin op name, first output tensor name) of each op of a TFLite model, in execution order."""
    from .probe import tflite_graph

    interp = tflite_graph(model)
    tensors = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    return [(op["op_name"], tensors[op["outputs"][0]]) for op in interp._get_ops_details() if len(op["outputs"])]
