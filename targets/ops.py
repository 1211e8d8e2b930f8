"""Which operators a model uses, and whether a target's runtime can run them.

Reads ONNX (protobuf) and TFLite (flatbuffer) bytes without onnx or TensorFlow:
the ONNX reader walks the protobuf wire format for the few fields it needs
(graph nodes, sub-graphs in attributes, model-local functions); the TFLite
reader uses the flatbuffer schema that ships with ``ai-edge-litert``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgeseal.runtime.backends.onnx_graph import fields as _fields
from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .profile import ModelFormat, TargetProfile, get_profile

__all__ = ["detect_format", "model_ops", "OpCheck", "check_model", "require_supported"]


def detect_format(model: bytes) -> ModelFormat:
    """ONNX or TFLite, from the bytes (TFLite files carry the identifier ``TFL3`` at offset 4)."""
    if len(model) >= 8 and bytes(model[4:8]) == b"TFL3":
        return ModelFormat.TFLITE
    try:
        fields = dict.fromkeys(num for num, _, _ in _fields(memoryview(model)[:4096], partial=True))
    except ValueError:
        fields = {}
    if 7 in fields or 1 in fields:  # ModelProto.graph / ir_version
        return ModelFormat.ONNX
    raise ConfigError("model is neither ONNX nor TFLite (no ONNX ModelProto, no 'TFL3' identifier)")


# --- ONNX: operators from the protobuf wire format (reader: edgeseal.runtime.backends.onnx_graph) ---


def _graph_ops(graph: memoryview, out: Counter) -> None:
    for num, wt, value in _fields(graph):
        if num == 1 and wt == 2:  # GraphProto.node
            _node_ops(value, out)  # type: ignore[arg-type]


def _node_ops(node: memoryview, out: Counter) -> None:
    op_type, domain = "", ""
    for num, wt, value in _fields(node):
        if wt != 2:
            continue
        if num == 4:  # NodeProto.op_type
            op_type = bytes(value).decode()  # type: ignore[arg-type]
        elif num == 7:  # NodeProto.domain
            domain = bytes(value).decode()  # type: ignore[arg-type]
        elif num == 5:  # NodeProto.attribute -> AttributeProto.g (6) / graphs (11)
            for anum, awt, avalue in _fields(value):  # type: ignore[arg-type]
                if awt == 2 and anum in (6, 11):
                    _graph_ops(avalue, out)  # type: ignore[arg-type]
    out[(_onnx_domain(domain), op_type)] += 1


def _onnx_domain(domain: str) -> str:
    return "ai.onnx" if domain in ("", "ai.onnx") else domain


def _onnx_ops(model: bytes) -> Counter:
    used: Counter = Counter()
    local: set[tuple[str, str]] = set()
    try:
        for num, wt, value in _fields(memoryview(model)):
            if num == 7 and wt == 2:  # ModelProto.graph
                _graph_ops(value, used)  # type: ignore[arg-type]
            elif num == 25 and wt == 2:  # ModelProto.functions (FunctionProto)
                name = domain = ""
                for fnum, fwt, fvalue in _fields(value):  # type: ignore[arg-type]
                    if fwt == 2 and fnum == 1:
                        name = bytes(fvalue).decode()  # type: ignore[arg-type]
                    elif fwt == 2 and fnum == 10:
                        domain = bytes(fvalue).decode()  # type: ignore[arg-type]
                    elif fwt == 2 and fnum == 7:  # the function body's nodes must be runnable too
                        _node_ops(fvalue, used)  # type: ignore[arg-type]
                local.add((_onnx_domain(domain), name))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ONNX model is malformed ({exc}); re-export it") from None
    for key in local:  # a call to a model-local function is not a runtime kernel
        used.pop(key, None)
    return used


# --- TFLite: flatbuffer schema from ai-edge-litert -------------------------------------------


def _tflite_ops(model: bytes) -> Counter:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise UnsupportedError(
            "listing TFLite operators needs ai-edge-litert: pip install 'edgeseal[tflite]'",
            reason="ai-edge-litert missing",
        ) from None
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    try:
        m = schema.Model.GetRootAsModel(bytearray(model), 0)
        codes = []
        for i in range(m.OperatorCodesLength()):
            oc = m.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if code == schema.BuiltinOperator.CUSTOM:
                codes.append(("custom", oc.CustomCode().decode()))
            else:
                codes.append(("tflite", names.get(code, f"BUILTIN_{code}")))
        used: Counter = Counter()
        for s in range(m.SubgraphsLength()):
            sg = m.Subgraphs(s)
            for i in range(sg.OperatorsLength()):
                used[codes[sg.Operators(i).OpcodeIndex()]] += 1
    except Exception as exc:  # flatbuffers raises plain IndexError/struct.error on garbage
        raise ConfigError(f"TFLite model is malformed ({type(exc).__name__}); re-convert it") from None
    return used


def model_ops(model: bytes) -> Counter:
    """Counter of ``(domain, op)`` -> number of nodes, over the whole model (sub-graphs included)."""
    fmt = detect_format(model)
    return _onnx_ops(model) if fmt is ModelFormat.ONNX else _tflite_ops(model)


@dataclass(frozen=True)
class OpCheck:
    """The result of checking a model against a target: every op used, and those not supported."""

    target: str
    format: ModelFormat
    used: dict[str, int]
    unsupported: tuple[str, ...]
    format_ok: bool

    @property
    def ok(self) -> bool:
        return self.format_ok and not self.unsupported

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "format": self.format.value,
            "format_ok": self.format_ok,
            "ok": self.ok,
            "used": self.used,
            "unsupported": list(self.unsupported),
        }


def _op_name(domain: str, op: str) -> str:
    return op if domain in ("ai.onnx", "tflite") else f"{domain}::{op}"


def check_model(model: bytes, target: str | TargetProfile) -> OpCheck:
    """Check a model's format and operators against a target profile (nothing is raised for a misfit)."""
    profile = get_profile(target)
    fmt = detect_format(model)
    if fmt is not profile.format:
        return OpCheck(profile.name, fmt, {}, (), False)
    used = model_ops(model)
    opset = profile.ops()
    unsupported = tuple(sorted(_op_name(d, o) for (d, o) in used if not opset.supports(d, o)))
    return OpCheck(profile.name, fmt, {_op_name(d, o): n for (d, o), n in sorted(used.items())}, unsupported, True)


def require_supported(model: bytes, target: str | TargetProfile) -> OpCheck:
    """Like :func:`check_model` but raise :class:`UnsupportedError` naming the first misfit."""
    profile = get_profile(target)
    check = check_model(model, profile)
    if not check.format_ok:
        raise UnsupportedError(
            f"target {profile.name!r} runs {profile.format.value} models on {profile.runtime.value}, "
            f"but this model is {check.format.value}; convert it for {profile.name} or pick a "
            f"{check.format.value} target",
            reason="format",
        )
    if check.unsupported:
        ops = ", ".join(repr(o) for o in check.unsupported)
        raise UnsupportedError(
            f"model uses operator(s) {ops} that {profile.runtime.value} on target {profile.name!r} cannot run "
            f"(op set {profile.opset!r}); replace them in the model, or choose another target",
            reason="unsupported op " + check.unsupported[0],
        )
    return check
