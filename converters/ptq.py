"""edgeseal's static int8 ONNX recipe for convolutional networks: graph clean-up, bias correction, compaction.

    >>> int8, report = quantize_onnx_corrected(fp32, calibration)
    >>> print(report.summary())

Steps, each its own module so they can be used alone:

1. ONNX Runtime's ``quant_pre_process`` (shape inference, graph optimisation);
2. ``graph_passes.fold_pad_into_conv`` — explicit zero Pads become Conv ``pads`` so every
   Conv fuses to an int8 kernel;
3. ``equalize.equalize_onnx`` — cross-layer equalization of Conv pairs joined by ReLU or nothing
   (exact; ReLU6 pairs are left alone);
4. with ``float_input_conv``, the Conv that reads the graph input stays float, so the image is
   not rounded to 8 bits: on EfficientNet-Lite0 that rounding, amplified by the stem's large
   BatchNorm-folded weights, is the largest single loss of any tensor (logit SQNR 20.2 -> 24.9 dB
   with it alone kept float, measured in ``bench/results/efficientnet_int8.md``); the stem is
   ~3 % of the network's multiply-adds and no slower within noise. ``float_sensitive`` keeps float,
   too, the few tiny layers whose int8 weight alone costs the most output SQNR on calibration data
   (``weight_sensitivity``; on EfficientNet-Lite0 the first depthwise Conv, 288 weights);
5. optionally ``adaround.adaround_onnx`` — AdaRound (Nagel et al., ICML 2020): each Conv/Gemm
   weight's rounding up or down is learned on the calibration data so the layer's output stays
   closest to float, with the mean shift left folded into the bias; the weights are left on the
   int8 grid so step 6 reproduces those integers exactly. With ``AdaRoundConfig.quantized_inputs``
   a first MinMax calibration gives every activation's uint8 range (``ranges.activation_ranges``)
   and each layer learns its rounding and bias from inputs that carry that rounding;
6. static QDQ int8 with ONNX Runtime's tool (``OnnxStaticConfig``: per-channel symmetric int8
   weights, uint8 activations by default);
7. without AdaRound, ``bias_correction.correct_bias`` — the per-channel output-mean shift that
   int8 weights cause, folded into the float biases, then quantized again;
8. ``graph_passes.float_graph_outputs`` — the logits are not re-quantized to 8 bits (the last
   Gemm still runs as int8 ``QGemm``, with a float output);
9. ``graph_passes.strip_debug_info`` and ``drop_zero_weight_zero_points`` — the exporter's
   stack traces and all-zero weight zero points go; the function does not change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .adaround import AdaRoundConfig, AdaRoundReport, adaround_onnx
from .bias_correction import BiasCorrectionReport, correct_bias
from .equalize import EqualizeReport, equalize_onnx
from .graph_passes import consumers, drop_zero_weight_zero_points, float_graph_outputs, fold_pad_into_conv, strip_debug_info
from .quantize import CalibrationData, OnnxStaticConfig, as_feeds, preprocess_onnx, quantize_onnx_static
from .ranges import activation_ranges

__all__ = ["PtqReport", "WeightSensitivity", "input_convs", "load_onnx_weights", "matching_tflite_ops",
           "quantize_onnx_corrected", "weight_sensitivity"]


@dataclasses.dataclass(frozen=True)
class PtqReport:
    """What each step of the recipe did."""

    pads_folded: int
    equalization: EqualizeReport
    bias_correction: BiasCorrectionReport | None
    zero_points_dropped: int
    size_bytes: int
    adaround: AdaRoundReport | None = None
    float_outputs: int = 0  # graph outputs whose Q/DQ pair was removed (logits kept float)
    float_nodes: tuple[str, ...] = ()  # nodes left float by the recipe (float_input_conv, float_sensitive)
    sensitivity: tuple[WeightSensitivity, ...] = ()  # weight_sensitivity's ranking, when float_sensitive asked for it
    # the float model whose weights lie on the int8 grid (after CLE and AdaRound), for re-use by
    # another format (e.g. TFLite: ``load_onnx_weights``); not part of the printed report
    rounded_model: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pads_folded": self.pads_folded,
            "equalization": self.equalization.to_dict(),
            "bias_correction": None if self.bias_correction is None else self.bias_correction.to_dict(),
            "zero_points_dropped": self.zero_points_dropped,
            "size_bytes": self.size_bytes,
            "adaround": None if self.adaround is None else self.adaround.to_dict(),
            "float_outputs": self.float_outputs,
            "float_nodes": list(self.float_nodes),
            "sensitivity": [r.to_dict() for r in self.sensitivity[:8]],
        }

    def summary(self) -> str:
        lines = [f"folded {self.pads_folded} Pad(s) into Conv pads", self.equalization.summary()]
        if self.float_nodes:
            lines.append(f"kept float: {', '.join(self.float_nodes)}")
        if self.adaround is not None:
            lines.append(self.adaround.summary())
        if self.bias_correction is not None:
            lines.append(self.bias_correction.summary())
        if self.float_outputs:
            lines.append(f"kept {self.float_outputs} graph output(s) float (no 8-bit re-quantization of the logits)")
        lines.append(f"dropped {self.zero_points_dropped} all-zero weight zero points; {self.size_bytes:,} bytes")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class WeightSensitivity:
    """One layer: its weight's parameter count and the model's output SQNR (dB, against the float model on
    calibration inputs) when that weight alone is rounded to nearest on the per-channel int8 grid."""

    node: str
    params: int
    sqnr_db: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "params": self.params, "sqnr_db": round(self.sqnr_db, 2)}


def weight_sensitivity(model: bytes, calibration: CalibrationData, *, samples: int = 16) -> tuple[WeightSensitivity, ...]:
    """Each Conv/Gemm weight's own cost: the float model with only that weight rounded to nearest on ONNX
    Runtime's per-channel symmetric int8 grid (max|w| / 127 per output channel), output SQNR against the
    float model on the first ``samples`` calibration inputs; most harmful first.

    Depthwise-separable networks concentrate this cost in a few tiny layers (on EfficientNet-Lite0 the
    3x3x3 stem and the first 3x3 depthwise Conv, 864 and 288 weights, account for ~70 % of the summed
    error power of all 50 layers), which is what ``float_sensitive`` in
    :func:`quantize_onnx_corrected` acts on."""
    import onnx
    from onnx import numpy_helper

    from edgeseal.runtime.fidelity import sqnr_db

    from .adaround import int8_grid
    from .infer import runner_for

    feeds = as_feeds(model, calibration, limit=samples, batch_size=samples)
    x = np.concatenate([next(iter(f.values())) for f in feeds])
    proto = onnx.load_from_string(model)
    inits = {i.name: i for i in proto.graph.initializer}
    ref = runner_for(model, threads=1).run(x).astype(np.float64)
    out = []
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        t = inits[node.input[1]]
        w = numpy_helper.to_array(t)
        axis = 1 if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute) else 0
        s = int8_grid(w.astype(np.float64), axis)
        t.CopyFrom(numpy_helper.from_array((np.clip(np.round(w / s), -127, 127) * s).astype(w.dtype), t.name))
        got = runner_for(proto.SerializeToString(), threads=1).run(x)
        t.CopyFrom(numpy_helper.from_array(w, t.name))
        out.append(WeightSensitivity(node.name, int(w.size), float(sqnr_db(ref, got))))
    return tuple(sorted(out, key=lambda r: r.sqnr_db))


def input_convs(model: bytes) -> tuple[str, ...]:
    """Names of the Conv nodes that read a graph input directly (the stem of a convolutional network)."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    readers = consumers(g)
    return tuple(n.name for i in g.input if i.name not in inits for n in readers.get(i.name, []) if n.op_type == "Conv")


def quantize_onnx_corrected(model: bytes, calibration: CalibrationData, config: OnnxStaticConfig | None = None,
                            *, adaround: AdaRoundConfig | None = None, bias_correction: bool = True,
                            bias_samples: int = 64, bias_rounds: int = 1,
                            float_outputs: bool = True, float_input_conv: bool = False, float_sensitive: int = 0,
                            float_max_params: int = 4096) -> tuple[bytes, PtqReport]:
    """Static int8 of a convolutional ONNX model with edgeseal's recipe (see the module doc).

    ``adaround`` (a config) learns the weights' rounding first; it brings its own per-layer bias
    correction, so ``bias_correction`` (the statistical pass, step 7) then does not run: with the
    float weights already on the int8 grid it would see no weight error to correct.
    ``float_outputs`` removes the Q/DQ pair on the graph outputs (step 8); ``float_input_conv``
    keeps the Conv(s) reading the graph input float (step 4); ``float_sensitive`` keeps float, in
    addition, the that many layers whose weight alone costs the most output SQNR
    (:func:`weight_sensitivity`, on calibration inputs) among those with at most ``float_max_params``
    weights, so the file grows by at most ``4 * float_sensitive * float_max_params`` bytes.
    """
    if float_sensitive < 0 or float_max_params < 1:
        raise ConfigError(f"float_sensitive={float_sensitive} must be >= 0 and float_max_params={float_max_params} >= 1")
    config = config or OnnxStaticConfig()
    if config.preprocess:
        model = preprocess_onnx(model)
        config = config.replace(preprocess=False)
    model, pads = fold_pad_into_conv(model)
    model, eq = equalize_onnx(model)
    float_nodes: tuple[str, ...] = ()
    sensitivity: tuple[WeightSensitivity, ...] = ()
    if float_input_conv:
        float_nodes = tuple(n for n in input_convs(model) if n not in config.exclude_nodes)
    if float_sensitive:
        sensitivity = weight_sensitivity(model, calibration)
        small = [r.node for r in sensitivity if r.params <= float_max_params
                 and r.node not in float_nodes and r.node not in config.exclude_nodes]
        float_nodes += tuple(small[:float_sensitive])
    config = config.replace(exclude_nodes=config.exclude_nodes + float_nodes)

    def quantize(m: bytes) -> bytes:
        return quantize_onnx_static(m, calibration, config)

    ar = None
    if adaround is not None:
        if not adaround.layers and config.exclude_nodes:
            import onnx

            keep = tuple(n.name for n in onnx.load_from_string(model).graph.node
                         if n.op_type in ("Conv", "Gemm") and n.name not in config.exclude_nodes)
            adaround = dataclasses.replace(adaround, layers=keep)  # nodes that stay float are not rounded
        ranges = activation_ranges(quantize(model)) if adaround.quantized_inputs else None
        model, ar = adaround_onnx(model, calibration, adaround, activation_ranges=ranges)
        bias_correction = False
    rounded = model

    bc = None
    if bias_correction:
        _, bc = correct_bias(model, calibration, quantize=quantize, samples=bias_samples, rounds=bias_rounds)
        int8 = bc.quantized
    else:
        int8 = quantize(model)
    n_float = 0
    if float_outputs:
        int8, n_float = float_graph_outputs(int8)
    int8, dropped = drop_zero_weight_zero_points(strip_debug_info(int8))
    return int8, PtqReport(pads, eq, bc, dropped, len(int8), ar, n_float, float_nodes, sensitivity, rounded)


def load_onnx_weights(net: Any, model: bytes, sample: Any, *, atol: float = 1e-3) -> Any:
    """Put the Conv/Gemm weights and biases of an ONNX model exported from ``net`` (e.g. the float model
    with CLE'd, AdaRounded weights, ``PtqReport.rounded_model``) back into ``net``, in place, so another
    converter (TFLite) starts from the same integers.

    The exporter folds each BatchNorm into the Conv before it (weight ``<conv>.weight``, bias
    ``<conv>.weight_bias``); here each ``Conv2d`` whose output feeds a ``BatchNorm2d`` (found by running
    ``sample`` through ``net``) takes the folded weight and bias and its BatchNorm becomes an
    ``Identity``. Weights are matched by node input name = ``<module>.weight``. The result is checked:
    ``net`` on ``sample`` must give the ONNX model's output within ``atol`` (relative to its largest
    value), else :class:`~edgeseal.runtime.errors.InternalError`.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from edgeseal.runtime.errors import ConfigError, InternalError

    from .infer import runner_for

    g = onnx.load_from_string(model).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    modules = dict(net.named_modules())
    produced: dict[int, str] = {}
    bn_after: dict[str, str] = {}

    def on_conv(name: str) -> Any:
        return lambda _m, _i, out: produced.__setitem__(id(out), name)

    def on_bn(name: str) -> Any:
        def hook(_m: Any, inputs: Any) -> None:
            if id(inputs[0]) in produced:
                bn_after[produced[id(inputs[0])]] = name
        return hook

    hooks = [m.register_forward_hook(on_conv(n)) for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_pre_hook(on_bn(n)) for n, m in modules.items() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.as_tensor(np.asarray(sample, dtype=np.float32))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    loaded = 0
    with torch.no_grad():
        for node in g.node:
            if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
                continue
            mod_name = node.input[1].removesuffix(".weight")
            mod = modules.get(mod_name)
            if mod is None or not node.input[1].endswith(".weight"):
                raise ConfigError(f"ONNX weight {node.input[1]!r} names no module of the torch model; "
                                  "give the model the ONNX file was exported from")
            w = torch.from_numpy(np.array(inits[node.input[1]]))
            b = None
            if len(node.input) > 2 and node.input[2] in inits:
                b = torch.from_numpy(np.array(inits[node.input[2]]))
            if tuple(mod.weight.shape) != tuple(w.shape):
                raise ConfigError(f"{mod_name}: ONNX weight shape {tuple(w.shape)} != torch {tuple(mod.weight.shape)}")
            mod.weight.copy_(w)
            if mod_name in bn_after:  # the BatchNorm is already folded into the ONNX weight and bias
                parent, _, attr = bn_after[mod_name].rpartition(".")
                setattr(modules[parent] if parent else net, attr, torch.nn.Identity())
            if b is not None:
                if mod.bias is None:
                    mod.bias = torch.nn.Parameter(b.clone())
                else:
                    mod.bias.copy_(b)
            loaded += 1
    if not loaded:
        raise ConfigError("the ONNX model has no Conv/Gemm with constant weights to load")
    want = runner_for(model, threads=1).run(x.numpy())
    with torch.no_grad():
        got = net(x).numpy()
    err = float(np.abs(got - want).max())
    if err > atol * max(1.0, float(np.abs(want).max())):
        raise InternalError(f"after loading the ONNX weights the torch model differs from the ONNX model by {err:.3g} "
                            "(max abs); the module names or the BatchNorm pairing do not match")
    return net


def matching_tflite_ops(onnx_model: bytes, tflite_model: bytes, nodes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(TFLite op name, output tensor name) of the ops that compute the given ONNX Conv/Gemm ``nodes``, for
    two exports of one network (e.g. to keep in a TFLite model the layers ``float_nodes`` kept float in
    the ONNX one, via ``TfliteInt8Config(keep_float=...)``). Layers are matched by position in the chain
    of Conv/Gemm (ONNX) and CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED (TFLite) ops, and each match is
    checked: a grouped Conv must be a DEPTHWISE_CONV_2D, another Conv a CONV_2D (either, when it reads
    one input channel), a Gemm a FULLY_CONNECTED."""
    import onnx

    from .quantize import tflite_op_outputs

    g = onnx.load_from_string(onnx_model).graph
    in_per_group = {i.name: (i.dims[1] if len(i.dims) > 1 else 0) for i in g.initializer}
    layers = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    ops = [(op, name) for op, name in tflite_op_outputs(tflite_model)
           if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    if len(layers) != len(ops):
        raise ConfigError(f"the ONNX model has {len(layers)} Conv/Gemm layers but the TFLite model {len(ops)} "
                          "convolution/fully-connected ops; give two exports of the same network")
    unknown = sorted(set(nodes) - {n.name for n in layers})
    if unknown:
        raise ConfigError(f"{unknown} are not Conv/Gemm nodes of the ONNX model")
    out = []
    for n, (op, name) in zip(layers, ops):
        if n.op_type == "Gemm":
            want: tuple[str, ...] = ("FULLY_CONNECTED",)
        elif any(a.name == "group" and a.i > 1 for a in n.attribute):
            want = ("DEPTHWISE_CONV_2D",)
        elif in_per_group.get(n.input[1]) == 1:  # one input channel: converters may emit either
            want = ("CONV_2D", "DEPTHWISE_CONV_2D")
        else:
            want = ("CONV_2D",)
        if op not in want:
            raise ConfigError(f"ONNX {n.op_type} {n.name!r} lines up with TFLite {op} {name!r}; the two models "
                              "do not hold the same chain of layers")
        if n.name in nodes:
            out.append((op, name))
    return tuple(out)
