"""Export a torch model to ONNX (torch.export-based exporter) or TFLite (litert-torch).

Each export is checked against the torch model on sample inputs and reports
the opset, the operator types it uses (with counts) and the maximum absolute
difference to torch. Given the op types a target can run, an op outside
them is an ``UnsupportedError`` that names the op and the target.

    >>> result = export_onnx(model, sample)          # ExportResult
    >>> print(result.summary())
    >>> open("model.onnx", "wb").write(result.model)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, InternalError, UnsupportedError

from .infer import OnnxRunner, TfliteRunner

__all__ = [
    "ExportConfig", "ExportResult", "export_onnx", "export_tflite", "onnx_ops", "tflite_ops", "check_ops",
    "strip_debug_metadata", "layer_names",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """How to export and how hard to check.

    ``dynamic_batch`` makes the ONNX batch dimension free (TFLite keeps ``sample``'s fixed shape,
    as edge interpreters prefer). ``check_samples`` inputs are compared with torch; the export fails
    when the max abs error exceeds ``atol``. ``supported_ops`` lists the operator types the target
    runs (ONNX op types or TFLite builtin names); empty means no check. ``keep_debug_metadata``
    keeps the exporter's per-node ``metadata_props`` and doc strings (stack traces, FX node
    names: often a quarter to half of a small model's file); by default they are dropped.
    """

    opset: int = 20
    dynamic_batch: bool = True
    check_samples: int = 64
    atol: float = 1e-3
    supported_ops: tuple[str, ...] = ()
    keep_debug_metadata: bool = False

    def __post_init__(self) -> None:
        if not 17 <= self.opset <= 23:
            raise ConfigError(f"opset={self.opset} is outside what the torch.export-based exporter supports (17..23)")
        if self.check_samples < 1:
            raise ConfigError(f"check_samples={self.check_samples} must be >= 1")
        if not self.atol > 0:
            raise ConfigError(f"atol={self.atol} must be > 0")
        object.__setattr__(self, "supported_ops", tuple(self.supported_ops))


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported model and the evidence that it matches torch."""

    format: str  # "onnx" | "tflite"
    model: bytes = dataclasses.field(repr=False)
    opset: int | None
    ops: dict[str, int]
    max_abs_error: float
    checked_samples: int
    input_shape: tuple[int | str | None, ...]
    layer_names: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)  # ONNX node -> torch module path
    debug_metadata_bytes: int = 0  # what the dropped per-node metadata weighed (0 when kept or TFLite)

    @property
    def size_bytes(self) -> int:
        return len(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "size_bytes": self.size_bytes,
            "opset": self.opset,
            "ops": dict(self.ops),
            "max_abs_error": self.max_abs_error,
            "checked_samples": self.checked_samples,
            "input_shape": list(self.input_shape),
            "debug_metadata_bytes_dropped": self.debug_metadata_bytes,
        }

    def summary(self) -> str:
        ops = ", ".join(f"{k}x{v}" for k, v in sorted(self.ops.items()))
        opset = f" opset {self.opset}" if self.opset else ""
        return (
            f"{self.format}{opset}: {self.size_bytes:,} bytes, max |torch - {self.format}| = "
            f"{self.max_abs_error:.2e} on {self.checked_samples} samples; ops: {ops}"
        )


def onnx_ops(model: bytes) -> dict[str, int]:
    """Operator types of an ONNX model's main graph with their counts (domain-qualified if not default)."""
    import onnx

    proto = onnx.load_from_string(model)
    counts: collections.Counter[str] = collections.Counter()
    for node in proto.graph.node:
        counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
    return dict(counts)


def tflite_ops(model: bytes) -> dict[str, int]:
    """Builtin operator names of a TFLite model with their counts."""
    from .probe import tflite_graph

    return dict(collections.Counter(op["op_name"] for op in tflite_graph(model)._get_ops_details()))


def check_ops(ops: Iterable[str], supported: Iterable[str], *, target: str = "the target") -> None:
    """Raise ``UnsupportedError`` naming every op in ``ops`` that ``supported`` does not list."""
    supported = set(supported)
    if not supported:
        return
    missing = sorted(set(ops) - supported)
    if missing:
        raise UnsupportedError(
            f"{target} cannot run op(s) {', '.join(missing)}; replace those layers, keep them out of the "
            f"exported graph, or choose a target that supports them",
            reason=f"unsupported ops: {', '.join(missing)}",
        )


def _torch_reference(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    model = model.cpu().eval()
    with torch.no_grad():
        try:
            return model(torch.as_tensor(x)).float().numpy()
        except Exception:  # a program traced at a fixed batch of 1
            return np.concatenate([model(torch.as_tensor(x[i : i + 1])).float().numpy() for i in range(len(x))])


@contextlib.contextmanager
def quiet() -> Any:
    """Silence the exporters' chatter (they print progress and warnings to stdout/stderr)."""
    # torch's loggers have their own handlers bound to the real stderr, so redirecting stderr is not
    # enough for them (e.g. "torchvision is not installed. Skipping torchvision::nms").
    loggers = [logging.root] + [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _as_sample(sample: Any) -> np.ndarray:
    x = np.asarray(sample, dtype=np.float32)
    if x.ndim < 1 or len(x) < 1:
        raise ConfigError(f"sample inputs must be a non-empty batch (N, ...), got shape {x.shape}")
    return x


def export_onnx(model: Any, sample: Any, config: ExportConfig | None = None) -> ExportResult:
    """Export ``model`` to ONNX with ``torch.onnx.export(dynamo=True)``, weights inline, and check it.

    ``sample`` is a float batch ``(N, ...)``; the first ``config.check_samples`` rows are compared.
    """
    import torch

    config = config or ExportConfig()
    x = _as_sample(sample)[: config.check_samples]
    model = model.cpu().eval()
    example = torch.as_tensor(x[: max(2, min(len(x), 2))] if len(x) >= 2 else np.concatenate([x, x]))
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if config.dynamic_batch else None
    program = None
    with quiet():
        attempts = [(example, dynamic)] if dynamic is None else [(example, dynamic), (example[:1], None)]
        for i, (ex, dyn) in enumerate(attempts):  # a program traced at batch 1 only exports at batch 1
            try:
                program = torch.onnx.export(
                    model,
                    (ex,),
                    dynamo=True,
                    external_data=False,
                    opset_version=config.opset,
                    dynamic_shapes=dyn,
                    input_names=["input"],
                    output_names=["output"],
                    verbose=False,
                )
                break
            except Exception as exc:  # the exporter raises many types; say what failed and where to look
                if i == len(attempts) - 1:
                    raise UnsupportedError(
                        f"torch.onnx.export could not export {type(model).__name__}: {exc}".splitlines()[0],
                        reason="torch.export failed",
                    ) from exc
    proto = program.model_proto
    names = layer_names(proto)
    before = proto.ByteSize()
    if not config.keep_debug_metadata:
        strip_debug_metadata(proto)
    dropped = before - proto.ByteSize()
    data = proto.SerializeToString()
    if len(data) >= 2**31:
        raise UnsupportedError("model is over 2 GB; inline weights are not possible for ONNX protobufs")
    ops = onnx_ops(data)
    check_ops(ops, config.supported_ops)
    runner = OnnxRunner(data)
    got = runner.run_batched(x)
    err = float(np.max(np.abs(got - _torch_reference(model, x))))
    if not err <= config.atol:
        raise InternalError(f"exported ONNX differs from torch by {err:.3g} (> atol {config.atol}); please report")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return ExportResult("onnx", data, opset, ops, err, len(x), runner.input_shape, names, dropped)


def layer_names(proto: Any) -> dict[str, str]:
    """Node name -> the torch module it came from (the exporter's ``pkg.torch.onnx.name_scopes``)."""
    import ast

    out = {}
    for node in proto.graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                try:
                    scopes = [s for s in ast.literal_eval(prop.value) if s]
                except (ValueError, SyntaxError):
                    continue
                if len(scopes) >= 2:
                    out[node.name] = scopes[-2]
    return out


def strip_debug_metadata(proto: Any) -> None:
    """Drop per-node ``metadata_props`` and every doc string (in subgraphs and functions too); in place.

    The torch exporter stores a stack trace, the FX node and the module hierarchy on every node;
    the runtime never reads them. Model-level metadata (producer, opset) stays.
    """
    def graph(g: Any) -> None:
        g.doc_string = ""
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    graph(attr.g)
                for sub in attr.graphs:
                    graph(sub)
        for item in list(g.value_info) + list(g.input) + list(g.output) + list(g.initializer):
            item.doc_string = ""
            if hasattr(item, "metadata_props"):
                del item.metadata_props[:]
        if hasattr(g, "metadata_props"):
            del g.metadata_props[:]

    proto.doc_string = ""
    graph(proto.graph)
    for fn in proto.functions:
        for node in fn.node:
            del node.metadata_props[:]
            node.doc_string = ""


def export_tflite(model: Any, sample: Any, config: ExportConfig | None = None, *, batch: int = 1) -> ExportResult:
    """Export ``model`` to TFLite with litert-torch (no TensorFlow), fixed batch ``batch``, and check it."""
    import torch

    config = config or ExportConfig()
    x = _as_sample(sample)[: config.check_samples]
    model = model.cpu().eval()
    example = torch.as_tensor(x[:batch])
    if len(example) < batch:
        raise ConfigError(f"need at least batch={batch} sample inputs, got {len(x)}")
    data = convert_tflite(model, example)
    ops = tflite_ops(data)
    check_ops(ops, config.supported_ops)
    runner = TfliteRunner(data)
    got = runner.run_batched(x)
    err = float(np.max(np.abs(got - _torch_reference(model, x))))
    if not err <= config.atol:
        raise InternalError(f"exported TFLite differs from torch by {err:.3g} (> atol {config.atol}); please report")
    return ExportResult("tflite", data, None, ops, err, len(x), runner.input_shape)


def convert_tflite(model: Any, example: Any) -> bytes:
    """litert-torch conversion of ``model`` traced on ``example``; returns the flatbuffer bytes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet():
        import litert_torch

        try:
            return bytes(litert_torch.convert(model.cpu().eval(), (example,)).model_content())
        except Exception as exc:
            raise UnsupportedError(
                f"litert-torch could not convert {type(model).__name__}: {exc}".splitlines()[0],
                reason="litert-torch conversion failed",
            ) from exc
