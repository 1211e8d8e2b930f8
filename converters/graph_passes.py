"""Small ONNX graph passes that make int8 models smaller and let ONNX Runtime fuse Q/DQ.

* ``fold_pad_into_conv``: a constant zero ``Pad`` feeding only Convs (the explicit pad PyTorch
  "same"-padding layers and TF-ported models put before every strided conv) becomes the Convs'
  own ``pads``. A separate Pad sits between DequantizeLinear and Conv in a QDQ graph, so ONNX
  Runtime cannot fuse the pair into one int8 ``QLinearConv`` and runs the conv in float.
* ``float_graph_outputs``: the QuantizeLinear -> DequantizeLinear pair a QDQ quantizer puts on a
  graph output (a classifier's logits) goes; the last op still runs as an int8 kernel with a
  float output (``QGemm``), and the logits keep float resolution instead of 256 levels over their
  whole range (two close top logits could otherwise become a tie or swap).
* ``strip_debug_info``: drops the exporter's per-node ``metadata_props`` (stack traces, source
  class paths) and ``doc_string`` fields; they are not needed to run the model and cost
  hundreds of kilobytes in a 5 MB int8 model. Node and tensor names stay.

Each pass returns new model bytes and leaves its input alone; both leave the function unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fold_pad_into_conv", "strip_debug_info", "drop_zero_weight_zero_points", "float_graph_outputs"]


def _const(g: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for i in g.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def fold_pad_into_conv(model: bytes) -> tuple[bytes, int]:
    """Fold every constant-mode zero ``Pad`` on the spatial axes whose consumers are all Convs.

    Returns the new model and how many Pads were folded. A Pad is left alone when it pads the
    batch or channel axes, uses a non-zero value or a mode other than ``constant``, takes
    non-constant pads, or also feeds something that is not a Conv.
    """
    import onnx

    proto = onnx.load_from_string(model)
    g = proto.graph
    readers = consumers(g)
    graph_outputs = {o.name for o in g.output}
    folded = []
    for pad in g.node:
        if pad.op_type != "Pad" or pad.output[0] in graph_outputs:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pad.attribute}
        mode = attrs.get("mode", b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
            continue
        if len(pad.input) > 1 and pad.input[1]:
            pads = _const(g, pad.input[1])
        else:
            pads = np.asarray(attrs.get("pads", []))  # opset < 11 attribute form
        if pads is None or pads.size % 2 or pads.size < 6:
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = _const(g, pad.input[2])
            if value is None or np.any(value != 0):
                continue
        if len(pad.input) > 3 and pad.input[3]:
            continue  # explicit axes: keep it simple and leave it
        pads = [int(p) for p in pads.ravel()]
        rank = len(pads) // 2
        begin, end = pads[:rank], pads[rank:]
        if any(begin[:2]) or any(end[:2]) or min(pads) < 0:
            continue
        users = readers.get(pad.output[0], [])
        if not users or any(u.op_type != "Conv" or u.input[0] != pad.output[0] for u in users):
            continue
        for conv in users:
            cattrs = {a.name: a for a in conv.attribute}
            auto = cattrs.get("auto_pad")
            if auto is not None and onnx.helper.get_attribute_value(auto) not in (b"NOTSET", "NOTSET"):
                break
        else:
            for conv in users:
                cattrs = {a.name: a for a in conv.attribute}
                old = list(onnx.helper.get_attribute_value(cattrs["pads"])) if "pads" in cattrs else [0] * (2 * (rank - 2))
                k = rank - 2
                new = [old[i] + begin[2 + i] for i in range(k)] + [old[k + i] + end[2 + i] for i in range(k)]
                if "pads" in cattrs:
                    conv.attribute.remove(cattrs["pads"])
                conv.attribute.append(onnx.helper.make_attribute("pads", new))
                conv.input[0] = pad.input[0]
            folded.append(pad)
    for pad in folded:
        g.node.remove(pad)
    return proto.SerializeToString(), len(folded)


def consumers(graph: Any) -> dict[str, list[Any]]:
    """Value name -> the nodes that read it, once per input slot (a node reading it twice is listed twice)."""
    out: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def strip_debug_info(model: bytes) -> bytes:
    """Drop per-node ``metadata_props`` and every ``doc_string``: :func:`export.strip_debug_metadata` on bytes."""
    import onnx

    from .export import strip_debug_metadata

    proto = onnx.load_from_string(model)
    strip_debug_metadata(proto)
    return proto.SerializeToString()


def drop_zero_weight_zero_points(model: bytes) -> tuple[bytes, int]:
    """Remove all-zero ``zero_point`` initializers of DequantizeLinear nodes on int8 weights and int32 biases.

    ONNX defines a missing zero point as 0, and a symmetric int8 weight (or an int32 bias) has an
    all-zero one per channel: the same model, a few tens of kilobytes smaller. Zero points of
    activations (uint8, asymmetric) and of any int8 tensor whose zero point is not all zero stay.
    Only DequantizeLinear nodes that feed Convs are touched: ONNX Runtime's ARM build fuses
    Gemm into ``QGemm``, whose kernel rejects a weight without a zero point (found verifying
    EfficientNet-Lite0 on the emulated Raspberry Pi).
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    readers = consumers(g)
    dropped = set()
    for n in g.node:
        if n.op_type != "DequantizeLinear" or len(n.input) < 3 or n.input[0] not in inits or n.input[2] not in inits:
            continue
        if {r.op_type for r in readers.get(n.output[0], [])} != {"Conv"}:
            continue
        x = inits[n.input[0]]
        if x.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.INT32):
            continue
        zp = numpy_helper.to_array(inits[n.input[2]])
        if np.any(zp != 0):
            continue
        dropped.add(n.input[2])
        del n.input[2]
    still_used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if not (i.name in dropped and i.name not in still_used)]
    removed = len(g.initializer) - len(keep)
    del g.initializer[:]
    g.initializer.extend(keep)
    return proto.SerializeToString(), removed


def float_graph_outputs(model: bytes) -> tuple[bytes, int]:
    """Remove each QuantizeLinear -> DequantizeLinear pair whose DequantizeLinear produces a graph output.

    The tensor the QuantizeLinear read becomes the graph output itself (under the output's name).
    A pair is left alone when the QuantizeLinear's output or input has other readers. Returns the
    new model and how many pairs went.
    """
    import onnx

    proto = onnx.load_from_string(model)
    g = proto.graph
    readers = consumers(g)
    producer = {o: n for n in g.node for o in n.output}
    graph_inputs = {i.name for i in g.input} | {i.name for i in g.initializer}
    outputs = {o.name for o in g.output}
    drop, rename = set(), {}
    for name in outputs:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(readers.get(q.output[0], [])) != 1:
            continue
        src = q.input[0]
        if src in graph_inputs or src in outputs or len(readers.get(src, [])) != 1:
            continue
        drop.update((id(q), id(dq)))
        rename[src] = name
    if not drop:
        return model, 0
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep:
        n.output[:] = [rename.get(o, o) for o in n.output]
        n.input[:] = [rename.get(i, i) for i in n.input]
    del g.node[:]
    g.node.extend(keep)
    for vi in list(g.value_info):
        if vi.name in rename:
            g.value_info.remove(vi)
    return proto.SerializeToString(), len(rename)
