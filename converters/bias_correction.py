"""Empirical bias correction for static int8 ONNX models (Nagel et al., "Data-Free Quantization", ICCV 2019, §4.2).

Rounding weights and activations to int8 does not only add noise, it shifts the *mean* of each
output channel: ``E[W_q x_q] != E[W x]``. In depthwise-separable networks the shift is large
(few taps per output, very different per-channel ranges after BatchNorm folding) and it
accumulates layer after layer. The correction measures, on calibration data, the per-channel
mean of every Conv/Gemm output in the float model and in its int8 version and subtracts the
difference from that layer's bias; the model is then quantized again.

Correcting every layer at once over-corrects layers downstream of a corrected one (their input
shift is gone too), so the pass iterates: quantize, measure, correct, ``passes`` times. It
converges quickly because each round only has to remove what the last round left.

    >>> corrected, report = correct_bias(float_model, calib, quantize=lambda m: quantize_onnx_static(m, calib, cfg))
    >>> int8 = report.quantized          # the int8 model of the corrected float model

The float model returned has different biases than the original — it is the *int8* model
that matches the original better (``report.residual`` per pass says by how much).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .graph_passes import consumers
from .quantize import CalibrationData, as_feeds

__all__ = ["BiasCorrectionReport", "correct_bias", "channel_means", "expected_output_shift"]

_CORRECTABLE = ("Conv", "Gemm")


@dataclasses.dataclass(frozen=True)
class BiasCorrectionReport:
    """What the correction did: layers touched and the mean |output-mean shift| before each pass."""

    layers: tuple[str, ...]
    residual: tuple[float, ...]  # mean over layers of mean |mean_int8 - mean_float| per channel, before each round
    final_residual: float  # the same, measured on the returned int8 model
    quantized: bytes = dataclasses.field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": len(self.layers), "residual_per_pass": [round(r, 6) for r in self.residual],
                "final_residual": round(self.final_residual, 6)}

    def summary(self) -> str:
        steps = " -> ".join(f"{r:.4g}" for r in (*self.residual, self.final_residual))
        return f"bias correction on {len(self.layers)} layers, mean channel shift {steps}"


def _layer_outputs(model: bytes) -> dict[str, str]:
    """Node name -> first output tensor, for the correctable layers with a constant weight."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    return {n.name: n.output[0] for n in g.node if n.op_type in _CORRECTABLE and len(n.input) > 1 and n.input[1] in inits}


def channel_means(model: bytes, tensors: Sequence[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel (axis 1) mean of each named tensor over every sample and position, streamed batch by batch."""
    from .probe import intermediate_session

    sess = intermediate_session(model, tensors)  # intermediate tensors: ORT directly, optimizations off
    names = list(tensors)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for feed in feeds:
        for name, v in zip(names, sess.run(names, feed)):
            v = np.asarray(v, dtype=np.float64)
            axes = tuple(a for a in range(v.ndim) if a != 1)
            sums[name] = sums.get(name, 0.0) + v.sum(axis=axes)
            counts[name] = counts.get(name, 0) + int(v.size // v.shape[1])
    return {n: sums[n] / counts[n] for n in names}


def _quant_outputs(quant: bytes, float_nodes: dict[str, str]) -> dict[str, str]:
    """Float node name -> the int8 graph's tensor holding that node's (pre-requantization) output."""
    import onnx

    g = onnx.load_from_string(quant).graph
    by_name = {n.name: n for n in g.node}
    out = {}
    for name in float_nodes:
        node = by_name.get(name)
        if node is not None:
            out[name] = node.output[0]
    return out


def _apply(model: bytes, shifts: dict[str, np.ndarray]) -> bytes:
    """Subtract ``shifts[node]`` from each node's bias (adding a zero bias where it has none)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    readers = consumers(g)
    for n in g.node:
        if n.name not in shifts:
            continue
        shift = shifts[n.name]
        if n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if attrs.get("beta", 1.0) != 1.0:
                raise ConfigError(f"bias correction needs Gemm beta=1; node {n.name!r} has beta={attrs['beta']}")
        if len(n.input) > 2 and n.input[2]:
            old = inits.get(n.input[2])
            if old is None:
                continue  # a bias computed at run time: leave the layer alone
            bias = numpy_helper.to_array(old).astype(np.float64)
            if bias.shape != shift.shape:
                continue  # a broadcast bias (e.g. a scalar): not per channel
            new_name = n.input[2] if len(readers.get(n.input[2], [])) == 1 else f"{n.input[2]}_{n.name}_bc"
        else:
            bias = np.zeros_like(shift)
            new_name = f"{n.name}_bias_bc"
            while len(n.input) < 3:
                n.input.append("")
        tensor = numpy_helper.from_array((bias - shift).astype(np.float32), new_name)
        if new_name in inits:
            inits[new_name].CopyFrom(tensor)
        else:
            g.initializer.append(tensor)
            inits[new_name] = g.initializer[-1]
        n.input[2] = new_name
    return proto.SerializeToString()


def _dequantized_weights(quant: bytes) -> dict[str, np.ndarray]:
    """Node name -> its weight as the int8 model computes with it ((q - zero_point) * scale)."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load_from_string(quant).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    out = {}
    for n in g.node:
        if n.op_type not in _CORRECTABLE or len(n.input) < 2:
            continue
        dq = producer.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue  # a weight left in float: nothing to correct
        q = inits[dq.input[0]].astype(np.float64)
        scale = inits[dq.input[1]].astype(np.float64)
        zp = inits[dq.input[2]].astype(np.float64) if len(dq.input) > 2 and dq.input[2] in inits else np.zeros_like(scale)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        out[n.name] = (q - zp) * scale
    return out


def expected_output_shift(node: Any, delta: np.ndarray, mean_in: np.ndarray) -> np.ndarray | None:
    """E[(W_q - W) x] per output channel from the per-channel input mean (exact away from padded borders)."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        group = int(attrs.get("group", 1))
        out_ch, in_per_group = delta.shape[:2]
        if mean_in.size != in_per_group * group:
            return None
        per_tap = delta.reshape(out_ch, in_per_group, -1).sum(axis=2)  # (O, I/g)
        ex = mean_in.reshape(group, in_per_group)[np.arange(out_ch) // (out_ch // group)]  # (O, I/g)
        return (per_tap * ex).sum(axis=1)
    if attrs.get("transA", 0):
        return None
    w = delta.T if attrs.get("transB", 0) else delta  # (K, N)
    if mean_in.size != w.shape[0]:
        return None
    return float(attrs.get("alpha", 1.0)) * (mean_in @ w)


def correct_bias(model: bytes, data: CalibrationData, *, quantize: Callable[[bytes], bytes],
                 samples: int = 64, layers: Sequence[str] = (), rounds: int = 1) -> tuple[bytes, BiasCorrectionReport]:
    """Fold the mean output shift that int8 weights cause into each layer's float bias, then re-quantize.

    For each Conv/Gemm with an int8 weight, the shift is ``(W_q - W) · E[x_q]`` with ``W_q`` read from
    ``quantize(model)`` (the weight as the int8 model uses it) and ``E[x_q]`` the per-channel mean of
    the layer's input in that int8 model (dequantized) over ``samples`` calibration inputs; it is
    subtracted from the bias. Weight rounding does not depend on the bias, so one round removes the
    weights' part of the shift; the part activation rounding and clipping add stays (the report's
    residuals measure the whole shift, before and after).

    ``quantize`` maps float model bytes to int8 model bytes (same config and calibration data as
    the final model); ``layers`` limits the pass to those node names (default: every Conv/Gemm with
    a constant weight). ``rounds`` > 1 recomputes ``E[x_q]`` on the corrected int8 model (the inputs'
    means move once the upstream layers are corrected) and corrects again, one quantization per round.
    Returns the corrected float model and a report whose ``quantized`` is
    ``quantize(corrected)`` and whose residuals are the measured mean |per-channel output-mean
    difference| between the int8 and float models before and after.
    """
    import onnx
    from onnx import numpy_helper

    if rounds < 1:
        raise ConfigError(f"rounds={rounds} must be >= 1")
    feeds = as_feeds(model, data, limit=samples, batch_size=8)
    outputs = _layer_outputs(model)
    if layers:
        unknown = sorted(set(layers) - set(outputs))
        if unknown:
            raise ConfigError(f"layers {unknown} are not Conv/Gemm nodes with constant weights in this model")
        outputs = {k: v for k, v in outputs.items() if k in set(layers)}
    if not outputs:
        raise ConfigError("the model has no Conv or Gemm with a constant weight; nothing to correct")
    g = onnx.load_from_string(model).graph
    nodes = {n.name: n for n in g.node if n.name in outputs}
    weights = {i.name: i for i in g.initializer}
    quant = quantize(model)
    wq = _dequantized_weights(quant)
    todo = [k for k in outputs if k in wq]
    means = channel_means(model, sorted(set(outputs.values())), feeds)
    residuals = []
    corrected, shifts = model, {}
    for _ in range(rounds):
        # E[x] of each layer's input as the int8 model sees it (dequantized, after the upstream layers' int8 error)
        qg = onnx.load_from_string(quant).graph
        q_inputs = {n.name: n.input[0] for n in qg.node if n.name in todo}
        q_means = channel_means(quant, sorted(set(q_inputs.values())), feeds)
        shifts = {}
        for k in todo:
            w = numpy_helper.to_array(weights[nodes[k].input[1]]).astype(np.float64)
            if wq[k].shape != w.shape or k not in q_inputs:
                continue
            s = expected_output_shift(nodes[k], wq[k] - w, q_means[q_inputs[k]])
            if s is not None and s.shape == means[outputs[k]].shape:
                shifts[k] = s
        residuals.append(_residual(quant, outputs, means, feeds))
        corrected = _apply(model, shifts)  # always from the original biases: the shift is the whole weight part
        quant = quantize(corrected)
    after = _residual(quant, outputs, means, feeds)
    return corrected, BiasCorrectionReport(tuple(shifts), tuple(residuals), after, quant)


def _residual(quant: bytes, outputs: dict[str, str], ref: dict[str, np.ndarray], feeds: list[dict[str, np.ndarray]]) -> float:
    qout = _quant_outputs(quant, outputs)
    got = channel_means(quant, list(qout.values()), feeds)
    diffs = [np.abs(got[qout[k]] - ref[outputs[k]]).mean() for k in qout if got[qout[k]].shape == ref[outputs[k]].shape]
    return float(np.mean(diffs))
