"""Activation ranges of a static QDQ int8 model: read them back from its QuantizeLinear parameters.

ONNX Runtime's quantizer turns each activation's calibrated range [lo, hi] into a scale and zero
point; :func:`activation_ranges` inverts that, so a later pass (AdaRound with quantized inputs,
``adaround.adaround_onnx(..., activation_ranges=...)``) can reproduce exactly the rounding the int8
model applies to each tensor.
"""

from __future__ import annotations

import numpy as np

__all__ = ["activation_ranges", "set_activation_ranges"]


def activation_ranges(qdq_model: bytes) -> dict[str, tuple[float, float]]:
    """Tensor name -> (lo, hi) the uint8/int8 grid of its QuantizeLinear covers, for every activation
    (a QuantizeLinear whose input is not an initializer) with a per-tensor scale."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load_from_string(qdq_model).graph
    inits = {i.name: i for i in g.initializer}
    out: dict[str, tuple[float, float]] = {}
    for n in g.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits or n.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[n.input[1]])
        if scale.size != 1:
            continue
        zp = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 and n.input[2] in inits else np.uint8(0)
        lo_q, hi_q = (0, 255) if zp.dtype == np.uint8 else (-128, 127)
        s, z = float(scale), int(zp)
        out[n.input[0]] = ((lo_q - z) * s, (hi_q - z) * s)
    return out


def set_activation_ranges(qdq_model: bytes, ranges: dict[str, tuple[float, float]]) -> bytes:
    """The QDQ model with the scale and zero point of each named activation's QuantizeLinear (and the
    DequantizeLinear that shares them) recomputed for the range [lo, hi], as ONNX Runtime computes them."""
    import onnx
    from onnx import numpy_helper

    from edgeseal.runtime.errors import ConfigError

    from .adaround import uint8_params

    proto = onnx.load_from_string(qdq_model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    quants = {n.input[0]: n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    unknown = sorted(set(ranges) - set(quants))
    if unknown:
        raise ConfigError(f"no activation QuantizeLinear reads {unknown}; see activation_ranges() for the names")
    for name, (lo, hi) in ranges.items():
        q = quants[name]
        zp_t = inits[q.input[2]]
        if numpy_helper.to_array(zp_t).dtype != np.uint8:
            raise ConfigError(f"activation {name!r} is not uint8; only uint8 ranges can be set")
        scale, zp = uint8_params(lo, hi)
        inits[q.input[1]].CopyFrom(numpy_helper.from_array(np.array(scale, np.float32), q.input[1]))
        zp_t.CopyFrom(numpy_helper.from_array(np.array(zp, np.uint8), q.input[2]))
    return proto.SerializeToString()
