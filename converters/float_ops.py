"""What an exported model really computes in float, read off the graph itself.

A quantizer's own bookkeeping ("layers I excluded") says nothing about the ops it
never touched: a recurrent layer ORT's dynamic quantizer has no kernel for, the
Convs a MatMul-only dynamic recipe leaves alone, a TFLite op the quantizer
skipped. ``onnx_float_ops`` and ``tflite_float_ops`` walk the output graph and
classify every op that does arithmetic:

* **int8**: an integer kernel (``MatMulInteger``, ``ConvInteger``, ``QLinear*``,
  ``DynamicQuantize*``), or — in a QDQ graph — an op whose activations and weights
  all arrive through ``DequantizeLinear`` and whose outputs all go to
  ``QuantizeLinear`` (ONNX Runtime fuses that into an integer kernel; a ``MatMul``
  with dequantized inputs also runs as ``MatMulIntegerToFloat``); in TFLite, an op
  whose inputs, weights and outputs are all integer tensors;
* **float**: every other op that computes (data movement such as Reshape,
  Transpose, Slice, Concat, Shape is neither, and Q/DQ nodes are counted apart).

Each op carries its parameters (weights it consumes, counted once) and MACs
(Conv, MatMul/Gemm, GRU/LSTM/RNN, TFLite CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED/
BATCH_MATMUL; other ops count 0 MACs), at batch 1, so the report can say what
share of the model stayed float.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
from typing import Any

import numpy as np

from .graph_passes import consumers

__all__ = ["OpCost", "FloatOps", "onnx_float_ops", "tflite_float_ops", "float_ops"]

# ops that move or reshape data without arithmetic (neither int8 nor float compute)
_ONNX_MOVE = {
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Slice", "Split", "Shape", "Size",
    "Expand", "Identity", "Constant", "ConstantOfShape", "Cast", "Gather", "GatherElements", "Tile", "Range",
    "Pad", "DepthToSpace", "SpaceToDepth", "NonZero", "Where", "Equal", "Less", "Greater", "Not", "And", "Or",
}
_ONNX_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_ONNX_INTEGER = {
    "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm",
    "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat",
    "QLinearSoftmax", "QAttention", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "MatMulIntegerToFloat",
}
# input positions that hold weights (others are activations, scales or zero points)
_ONNX_WEIGHT_POS = {"MatMulInteger": (1,), "ConvInteger": (1,), "DynamicQuantizeMatMul": (1, 3), "DynamicQuantizeLSTM": (1, 2, 3),
                    "MatMulIntegerToFloat": (1, 5)}
_PARAM_DTYPES = {1, 2, 3, 6, 10, 11, 16}  # float, uint8, int8, int32 (biases), float16, double, bfloat16
# ops ONNX Runtime's CPU QDQ transformers turn into integer kernels (or run directly on int8) when every
# input comes through DequantizeLinear and every output goes to QuantizeLinear; any other op between
# DQ and Q (LayerNormalization, ReduceMean, Div, Tanh, GRU ...) still computes in float
_ONNX_QDQ_FUSED = {
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "AveragePool", "GlobalAveragePool", "MaxPool",
    "Relu", "Clip", "LeakyRelu", "Sigmoid", "Softmax", "Resize", "ArgMax", "Concat", "InstanceNormalization",
}

_TFLITE_MOVE = {
    "RESHAPE", "TRANSPOSE", "SLICE", "STRIDED_SLICE", "CONCATENATION", "SQUEEZE", "EXPAND_DIMS", "PACK", "UNPACK",
    "SPLIT", "SPLIT_V", "SHAPE", "GATHER", "GATHER_ND", "CAST", "TILE", "BROADCAST_TO", "PAD", "PADV2", "FILL",
}
_TFLITE_QDQ = {"QUANTIZE", "DEQUANTIZE"}
_TFLITE_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV",
                      "UNIDIRECTIONAL_SEQUENCE_LSTM", "EMBEDDING_LOOKUP"}


@dataclasses.dataclass(frozen=True)
class OpCost:
    """One computing op of the graph: its name, type, whether it runs in float, its parameters and MACs."""

    name: str  # a human name: the module path of its weights when the graph has one, else the node name
    op_type: str
    float: bool
    params: int
    macs: int
    node: str = ""  # the graph's own node name (what ``exclude_nodes`` takes); TFLite: the first output tensor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FloatOps:
    """Every computing op of one exported model, classified int8 or float, with parameter and MAC shares."""

    format: str
    ops: tuple[OpCost, ...]
    conversions: int  # QuantizeLinear/DequantizeLinear (TFLite QUANTIZE/DEQUANTIZE) ops

    @property
    def float_ops(self) -> tuple[OpCost, ...]:
        return tuple(o for o in self.ops if o.float)

    @property
    def int8_ops(self) -> tuple[OpCost, ...]:
        return tuple(o for o in self.ops if not o.float)

    @property
    def params(self) -> int:
        return sum(o.params for o in self.ops)

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def float_params(self) -> int:
        return sum(o.params for o in self.float_ops)

    @property
    def float_macs(self) -> int:
        return sum(o.macs for o in self.float_ops)

    @property
    def float_param_share(self) -> float:
        return self.float_params / self.params if self.params else 0.0

    @property
    def float_mac_share(self) -> float:
        return self.float_macs / self.macs if self.macs else 0.0

    def weighted_float(self) -> tuple[OpCost, ...]:
        """Float ops that carry parameters or MACs, largest first."""
        return tuple(sorted((o for o in self.float_ops if o.params or o.macs), key=lambda o: (-o.params, -o.macs)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "ops": [o.to_dict() for o in self.ops],
            "conversions": self.conversions,
            "params": self.params,
            "macs": self.macs,
            "float_params": self.float_params,
            "float_macs": self.float_macs,
            "float_param_share": self.float_param_share,
            "float_mac_share": self.float_mac_share,
            "float_ops": [o.name for o in self.float_ops],
        }

    def summary(self) -> str:
        """One line: what stayed float and its share (``kept in float: none`` only when nothing did)."""
        if not self.float_ops:
            return f"kept in float: none (all {len(self.ops)} computing ops run in int8)"
        heavy = self.weighted_float()
        light = collections.Counter(o.op_type for o in self.float_ops if not (o.params or o.macs))
        parts = [
            f"{o.name} ({o.op_type}, {o.params:,} params = {self._share(o.params, self.params)}, "
            f"{self._share(o.macs, self.macs)} of MACs)"
            for o in heavy
        ]
        if light:
            parts.append("parameter-free " + ", ".join(f"{k}x{v}" for k, v in sorted(light.items())))
        return (
            f"kept in float: {len(self.float_ops)} of {len(self.ops)} computing ops, "
            f"{self.float_param_share:.1%} of parameters, {self.float_mac_share:.1%} of MACs: " + "; ".join(parts)
        )

    @staticmethod
    def _share(part: int, whole: int) -> str:
        return f"{part / whole:.1%}" if whole else "0%"


# --------------------------------------------------------------------------- ONNX


def _human_name(node: Any, weight_roots: list[str], names: dict[str, str]) -> str:
    """Module path from the weights' names (``f.0.weight`` -> ``f.0``), else the module the exporter recorded
    for the node (``names``, or its name scope when the file still carries it), else the node name."""
    for w in weight_roots:
        base = w.removesuffix("_quantized").removesuffix("_Transposed")
        if "." in base and not base.startswith(("val_", "onnx::", "/")):
            return base.rsplit(".", 1)[0]
    if node.name in names:
        return names[node.name]
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                break
            if len(scopes) >= 2:
                return scopes[-2]
    return node.name or node.op_type


def _onnx_shapes(proto: Any, sample: np.ndarray | None) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor at batch 1: from one ORT run with all tensors exposed, else from shape inference."""
    import onnx

    shapes: dict[str, tuple[int, ...]] = {}
    for init in proto.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    if sample is not None:
        from .probe import intermediate_session

        try:  # every node output's shape: ORT directly, optimizations off
            sess = intermediate_session(proto.SerializeToString(), every_tensor=True)
            inputs = [i for i in sess.get_inputs()]
            if len(inputs) == 1:
                names = [o.name for o in sess.get_outputs()]
                values = sess.run(names, {inputs[0].name: np.asarray(sample[:1], np.float32)})
                shapes.update({n: tuple(np.shape(v)) for n, v in zip(names, values)})
                return shapes
        except Exception:  # fall back to static shape inference
            pass
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:
        return shapes
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes.setdefault(vi.name, tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims))
    return shapes


def _onnx_macs(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    op = node.op_type
    get = lambda i: shapes.get(node.input[i]) if len(node.input) > i and node.input[i] else None  # noqa: E731
    out = shapes.get(node.output[0]) if node.output else None
    size = lambda s: int(np.prod(s)) if s is not None else 0  # noqa: E731
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = get(3 if op == "QLinearConv" else 1)
        return size(out) * size(w[1:]) if w and out else 0
    if op == "ConvTranspose":
        x, w = get(0), get(1)
        return size(x) * size(w[1:]) if x and w else 0
    if op in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul"):
        a = get(0)
        return size(out) * a[-1] if a and out else 0
    if op in ("Gemm", "QGemm"):
        a = get(0)
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        return size(out) * (a[0] if trans_a else a[-1]) if a and out else 0
    if op in ("GRU", "LSTM", "RNN", "DynamicQuantizeLSTM"):
        x, w, r = get(0), get(1), get(2)
        if not (x and w and r):
            return 0
        layout = next((at.i for at in node.attribute if at.name == "layout"), 0)
        steps = x[1] if layout else x[0]
        batch = x[0] if layout else x[1]
        return steps * batch * (size(w) + size(r))
    return 0


def _is_param(init: Any) -> bool:
    """A weight or bias; not a quantization scale or zero point (ORT names those ``*_scale`` / ``*_zero_point``)."""
    return (
        init.data_type in _PARAM_DTYPES
        and int(np.prod(init.dims)) > 1
        and not init.name.endswith(("_scale", "_zero_point"))
    )


def onnx_float_ops(model: bytes, sample: np.ndarray | None = None, *, names: dict[str, str] | None = None) -> FloatOps:
    """Classify every computing node of an ONNX model as int8 or float, with params and MACs at batch 1.

    ``sample`` (a float batch for a single-input model) gives exact shapes from one run; without it
    ONNX shape inference is used and MACs of ops it cannot shape count 0. ``names`` maps node names
    to human names (``ExportResult.layer_names``: the torch module each node came from).
    """
    names = names or {}
    import onnx

    proto = onnx.load_from_string(bytes(model))
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = consumers(g)
    graph_outputs = {o.name for o in g.output}

    const: set[str] = set(inits)
    for n in g.node:  # graph nodes are topologically sorted
        if n.op_type == "Constant" or (n.input and all((not i) or i in const for i in n.input) and n.op_type not in ("Shape", "Size")):
            const.update(o for o in n.output if o)

    def roots(name: str) -> list[str]:
        """The initializers a constant input is made from (through DQ, reshapes, transposes...)."""
        if name in inits:
            return [name]
        n = producer.get(name)
        if n is None or name not in const:
            return []
        if n.op_type in ("DequantizeLinear", "QuantizeLinear", "Reshape", "Unsqueeze", "Squeeze", "Expand",
                         "Slice", "Transpose", "Cast", "Identity", "Gather"):
            return roots(n.input[0])
        out: list[str] = []
        for i in n.input:
            out += roots(i) if i else []
        return out

    def via_dq(name: str) -> bool:
        n = producer.get(name)
        while n is not None and n.op_type in ("Reshape", "Unsqueeze", "Squeeze", "Transpose") and name in const:
            name = n.input[0]
            n = producer.get(name)
        return n is not None and n.op_type == "DequantizeLinear"

    shapes = _onnx_shapes(proto, sample)
    counted: set[str] = set()
    ops: list[OpCost] = []
    conversions = 0
    for n in g.node:
        if n.op_type in _ONNX_QDQ:
            conversions += 1
            continue
        if n.op_type in _ONNX_MOVE or (n.output and all(o in const for o in n.output if o)):
            continue
        positions = _ONNX_WEIGHT_POS.get(n.op_type)
        weight_inputs = [i for k, i in enumerate(n.input) if i and i in const and (positions is None or k in positions)]
        data_inputs = [i for i in n.input if i and i not in const]
        weight_roots: list[str] = []
        for w in weight_inputs:
            weight_roots += [r for r in roots(w) if _is_param(inits[r])]
        params = 0
        for r in weight_roots:
            if r not in counted:
                counted.add(r)
                params += int(np.prod(inits[r].dims))
        if n.op_type in _ONNX_INTEGER or n.domain == "com.microsoft" and n.op_type.startswith("QLinear"):
            is_float = False
        else:
            ins_dq = all(via_dq(i) for i in data_inputs) and all(via_dq(w) for w in weight_inputs)
            outs = [o for o in n.output if o]
            outs_q = bool(outs) and all(
                o not in graph_outputs and readers.get(o) and all(c.op_type == "QuantizeLinear" for c in readers[o])
                for o in outs
            )
            fused = n.op_type in _ONNX_QDQ_FUSED and (outs_q or n.op_type == "MatMul")
            is_float = not (ins_dq and bool(data_inputs) and fused)
        label = _human_name(n, weight_roots, names)
        ops.append(OpCost(label, n.op_type, is_float, params, _onnx_macs(n, shapes), n.name))
    return FloatOps("onnx", tuple(ops), conversions)


# --------------------------------------------------------------------------- TFLite


def tflite_float_ops(model: bytes) -> FloatOps:
    """Classify every computing op of a TFLite model as int8 or float, with params and MACs (shapes are static)."""
    from .probe import tflite_graph

    interp = tflite_graph(model)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    op_details = interp._get_ops_details()
    produced = {int(o) for op in op_details for o in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interp.get_input_details()}
    const = {i for i in tensors if i not in produced and i not in graph_inputs}
    counted: set[int] = set()
    ops: list[OpCost] = []
    conversions = 0
    integer = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64), np.dtype(bool)}
    for op in op_details:
        name = op["op_name"]
        ins = [int(i) for i in op["inputs"] if int(i) >= 0]
        outs = [int(o) for o in op["outputs"]]
        if name in _TFLITE_QDQ:
            conversions += 1
            continue
        if name in _TFLITE_MOVE:
            continue
        weights = [i for i in ins if i in const and name in _TFLITE_WEIGHT_OPS]
        params = 0
        for w in weights:
            if w not in counted and np.dtype(tensors[w]["dtype"]) != np.int64:
                counted.add(w)
                params += int(np.prod(tensors[w]["shape"]))
        dtypes = [np.dtype(tensors[i]["dtype"]) for i in ins + outs if i not in const or i in weights]
        is_float = any(dt not in integer for dt in dtypes)
        macs = _tflite_macs(name, ins, outs, tensors)
        label = _tflite_human_name(tensors[outs[0]]["name"]) if outs else name
        ops.append(OpCost(label, name, is_float, params, macs, tensors[outs[0]]["name"] if outs else name))
    return FloatOps("tflite", tuple(ops), conversions)


def _tflite_human_name(tensor: str) -> str:
    """``pkg.Model/torch.nn...Sequential_f/torch.nn...Conv2d_3;2`` -> ``f.3`` (litert-torch's scope names)."""
    parts = [p for p in tensor.split(";") if "/" in p]
    if not parts:
        return tensor
    attrs = []
    for seg in parts[-1].split("/")[1:]:
        cls_attr = seg.rsplit(".", 1)[-1]
        if "_" in cls_attr:
            attrs.append(cls_attr.split("_", 1)[1])
    return ".".join(attrs) or tensor


def _tflite_macs(op: str, ins: list[int], outs: list[int], tensors: dict[int, Any]) -> int:
    shape = lambda i: tuple(int(d) for d in tensors[i]["shape"])  # noqa: E731
    if not outs or len(ins) < 2:
        return 0
    out = int(np.prod(shape(outs[0])))
    w = shape(ins[1])
    if op == "CONV_2D" and len(w) == 4:  # [Cout, kh, kw, Cin]
        return out * w[1] * w[2] * w[3]
    if op == "DEPTHWISE_CONV_2D" and len(w) == 4:  # [1, kh, kw, Cout]
        return out * w[1] * w[2]
    if op == "FULLY_CONNECTED" and w:  # [out, in]
        return out * w[-1]
    if op == "BATCH_MATMUL":
        return out * shape(ins[0])[-1]
    return 0


def float_ops(model: bytes, sample: np.ndarray | None = None, *, names: dict[str, str] | None = None) -> FloatOps:
    """``onnx_float_ops`` or ``tflite_float_ops``, chosen by the file's bytes."""
    from .infer import detect_format

    if detect_format(bytes(model)) == "tflite":
        return tflite_float_ops(model)
    return onnx_float_ops(model, sample, names=names)
