"""AdaRound for ONNX Conv/Gemm weights (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training
Quantization", ICML 2020).

Rounding every weight to its nearest int8 level is not the best choice for the layer's *output*:
the rounding errors of one output channel add up over its inputs. AdaRound learns, layer by
layer, whether each weight rounds up or down so that the layer's output on calibration data
stays closest to the float output:

    minimise  || f(W~ x + b) - f(W x + b) ||²  +  λ Σ (1 - |2 h(V) - 1|^β)
    W~ = s · clip(floor(W / s) + h(V), -127, 127),   h(V) = clip(sigmoid(V) · 1.2 - 0.1, 0, 1)

with ``f`` the activation that follows the layer (ReLU / ReLU6 as ``Clip``, when the layer's only
consumer), ``s`` the per-output-channel symmetric int8 scale ONNX Runtime's quantizer uses
(``max|W| / 127``), and ``β`` annealed from 20 to 2 so the regulariser pushes every ``h`` to 0 or 1.
Layers are done in graph order; each layer's input ``x`` comes from the model whose earlier
layers are already rounded (their error is part of what the layer sees), and the target from
the float model.

The result is a *float* model whose Conv/Gemm weights lie exactly on the int8 grid
(``W' = s · q``): ONNX Runtime's static quantizer (symmetric per-channel int8 weights) then
computes the same scales and reproduces ``q`` exactly — :func:`adaround_onnx` checks the
largest weight of every channel keeps its level so the scale cannot move. With
``bias_correction`` each layer's bias also absorbs the mean pre-activation shift left after
rounding (measured on the same calibration inputs), since the usual bias correction cannot see
a weight error once the float weights sit on the grid.

Only the calibration data is used; nothing here looks at evaluation data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .common import progress
from .graph_passes import consumers
from .quantize import CalibrationData, as_feeds

__all__ = ["AdaRoundConfig", "AdaRoundLayer", "AdaRoundReport", "adaround_onnx", "fake_quant_uint8", "int8_grid",
           "uint8_params"]

_ZETA, _GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (paper, eq. 23)
_REPORT_SAMPLES = 8  # samples the per-layer report's errors are measured on
_QMAX = 127  # symmetric int8 weights: levels -127..127 (ONNX Runtime's symmetric range)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaRoundConfig:
    """``samples`` calibration inputs (the only data used), ``iterations`` Adam steps per layer on random
    batches of ``batch_size`` of them (large feature maps cut to random ``crop`` x ``crop`` output
    windows, the input region they read), regulariser weight ``reg_weight`` with ``β`` annealed from
    ``beta_start`` to ``beta_end`` after the first ``warmup`` fraction of the steps. ``layers`` limits
    the pass to those node names (default: every Conv and Gemm with a constant weight).
    ``quantized_inputs`` asks :func:`edgeseal.converters.ptq.quantize_onnx_corrected` to calibrate the
    activation ranges first and pass them as ``activation_ranges`` (each layer then learns from inputs
    rounded as in the int8 model); :func:`adaround_onnx` itself uses whatever ranges it is given."""

    samples: int = 64
    iterations: int = 300
    batch_size: int = 8
    crop: int = 28
    lr: float = 1e-2
    reg_weight: float = 0.01
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2
    bias_correction: bool = True
    layers: tuple[str, ...] = ()
    quantized_inputs: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "batch_size", "crop"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.iterations < 0:
            raise ConfigError(f"iterations={self.iterations} must be >= 0 (0: round to nearest)")
        if not self.lr > 0 or not self.reg_weight >= 0:
            raise ConfigError(f"lr={self.lr} must be > 0 and reg_weight={self.reg_weight} >= 0")
        if not self.beta_start >= self.beta_end > 0:
            raise ConfigError(f"need beta_start >= beta_end > 0, got {self.beta_start}, {self.beta_end}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup={self.warmup} must be in [0, 1)")
        if isinstance(self.layers, str):
            raise ConfigError(f"layers must be a list of node names, not the single string {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))


@dataclasses.dataclass(frozen=True)
class AdaRoundLayer:
    """One layer: its output error (mean squared, after its activation, on the first 8 calibration inputs)
    with round-to-nearest and with the learned rounding (and bias correction), and the fraction of
    weights rounded the other way."""

    node: str
    mse_nearest: float
    mse_adaround: float
    flipped: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "mse_nearest": float(f"{self.mse_nearest:.4g}"),
                "mse_adaround": float(f"{self.mse_adaround:.4g}"), "flipped": round(self.flipped, 4)}


@dataclasses.dataclass(frozen=True)
class AdaRoundReport:
    layers: tuple[AdaRoundLayer, ...]
    skipped: tuple[tuple[str, str], ...]  # (node, why)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [x.to_dict() for x in self.layers], "skipped": [list(s) for s in self.skipped],
                "median_error_ratio": round(self.median_error_ratio, 4)}

    @property
    def median_error_ratio(self) -> float:
        """Median over layers of (AdaRound output error / round-to-nearest output error); < 1 is better."""
        r = [x.mse_adaround / x.mse_nearest for x in self.layers if x.mse_nearest > 0]
        return float(np.median(r)) if r else 1.0

    def summary(self) -> str:
        s = (f"AdaRound on {len(self.layers)} layers: median output error {self.median_error_ratio:.2f}x "
             "that of round-to-nearest")
        if self.skipped:
            s += f"; skipped {len(self.skipped)} ({', '.join(f'{n}: {w}' for n, w in self.skipped[:3])})"
        return s


def int8_grid(w: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per-channel symmetric int8 scale along ``axis`` as ONNX Runtime computes it: max|w| / 127 (1 for an all-zero channel)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    s = np.abs(w).max(axis=red, keepdims=True).astype(np.float64) / _QMAX
    s[s == 0] = 1.0
    return s


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _activation(readers_of: dict[str, list[Any]], node: Any, inits: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """(lo, hi) clamp of the Relu/Clip that is the layer's only consumer; None when there is none."""
    readers = readers_of.get(node.output[0], [])
    if len(readers) != 1 or readers[0].op_type not in ("Relu", "Clip"):
        return None
    act = readers[0]
    if act.op_type == "Relu":
        return (0.0, math.inf)
    a = _attrs(act)
    lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
    for k, default in ((1, lo), (2, hi)):
        if len(act.input) > k and act.input[k]:
            if act.input[k] not in inits:
                return None  # a non-constant clamp: reconstruct the raw output instead
            v = float(inits[act.input[k]])
            lo, hi = (v, hi) if k == 1 else (lo, v)
        else:
            lo, hi = (default, hi) if k == 1 else (lo, default)
    return (float(lo), float(hi))


class _Layer:
    """The layer as a torch function of (input, weight)."""

    def __init__(self, node: Any, w: np.ndarray, b: np.ndarray | None) -> None:
        a = _attrs(node)
        self.op = node.op_type
        self.w, self.b = w, b
        if self.op == "Conv":
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ValueError("auto_pad is not NOTSET")
            pads = list(a.get("pads", [0] * (2 * (w.ndim - 2))))
            k = len(pads) // 2
            if k != 2:
                raise ValueError(f"{k}-D convolution (only 2-D is handled)")
            self.pad = (pads[1], pads[3], pads[0], pads[2])  # F.pad order: left, right, top, bottom
            self.stride, self.dil, self.group = a.get("strides", [1, 1]), a.get("dilations", [1, 1]), a.get("group", 1)
            self.kernel = tuple(w.shape[2:])
            self.axis = 0
        else:
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ValueError("Gemm with transA or alpha/beta != 1")
            self.trans_b = bool(a.get("transB", 0))
            self.axis = 0 if self.trans_b else 1  # the output-channel axis of the weight

    def __call__(self, x: Any, w: Any, b: Any) -> Any:
        return self.unpadded(self.padded(x), w, b)

    def padded(self, x: Any) -> Any:
        import torch.nn.functional as F

        return F.pad(x, self.pad) if self.op == "Conv" and any(self.pad) else x

    def unpadded(self, x: Any, w: Any, b: Any) -> Any:
        """The layer on an input that is already padded."""
        import torch.nn.functional as F

        if self.op == "Conv":
            return F.conv2d(x, w, b, stride=self.stride, dilation=self.dil, groups=self.group)
        y = x @ (w.t() if self.trans_b else w)
        return y if b is None else y + b

    def crop(self, xp: Any, t: Any, size: int, rng: np.random.Generator) -> tuple[Any, Any]:
        """A random ``size`` x ``size`` window of the output ``t`` and the padded input region it reads."""
        if self.op != "Conv" or t.shape[-1] <= size and t.shape[-2] <= size:
            return xp, t
        (sh, sw), (dh, dw), (kh, kw) = self.stride, self.dil, self.kernel
        ph, pw = min(size, t.shape[-2]), min(size, t.shape[-1])
        oy, ox = int(rng.integers(0, t.shape[-2] - ph + 1)), int(rng.integers(0, t.shape[-1] - pw + 1))
        xs = xp[..., oy * sh:(oy + ph - 1) * sh + (kh - 1) * dh + 1, ox * sw:(ox + pw - 1) * sw + (kw - 1) * dw + 1]
        return xs, t[..., oy:oy + ph, ox:ox + pw]


class _Graph:
    """A small torch interpreter for the ONNX ops a convolutional classifier is made of. It runs the float
    model and the partly rounded one side by side, node by node, so each layer's input and float
    target come from one pass over the calibration samples."""

    OPS = ("Conv", "Gemm", "MatMul", "Clip", "Relu", "Add", "Mul", "Sigmoid", "ReduceMean", "GlobalAveragePool",
           "MaxPool", "Reshape", "Flatten", "Identity")

    def __init__(self, g: Any, inits: dict[str, np.ndarray]) -> None:
        bad = sorted({n.op_type for n in g.node if n.op_type not in self.OPS})
        if bad:
            raise UnsupportedError(f"AdaRound's graph runner does not handle the op types {bad}; "
                                   "quantize without adaround (bias correction still applies)",
                                   reason="unsupported ops")
        self.inits = inits
        self.uses: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in g.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1

    def step(self, node: Any, env: dict[str, Any], weights: dict[str, Any] | None = None) -> None:
        """Run ``node`` on ``env`` (in place); ``weights`` overrides initializers by name."""
        import torch

        def v(i: int) -> Any:
            if i >= len(node.input) or not node.input[i]:
                return None
            name = node.input[i]
            if weights is not None and name in weights:
                return weights[name]
            if name in env:
                return env[name]
            return torch.from_numpy(np.array(self.inits[name]))

        op, a = node.op_type, _attrs(node)
        if op in ("Conv", "Gemm"):
            out = _Layer(node, np.asarray(self.inits[node.input[1]]), None)(v(0), v(1), v(2))
        elif op == "MatMul":
            out = v(0) @ v(1)
        elif op == "Clip":
            lo, hi = v(1), v(2)
            lo = a.get("min", -math.inf) if lo is None else float(lo)
            hi = a.get("max", math.inf) if hi is None else float(hi)
            out = torch.clamp(v(0), lo, hi)
        elif op == "Relu":
            out = torch.relu(v(0))
        elif op == "Sigmoid":
            out = torch.sigmoid(v(0))
        elif op == "Add":
            out = v(0) + v(1)
        elif op == "Mul":
            out = v(0) * v(1)
        elif op == "ReduceMean":
            axes = a.get("axes") if v(1) is None else [int(x) for x in np.asarray(v(1)).ravel()]
            out = v(0).mean(dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))
        elif op == "GlobalAveragePool":
            out = v(0).mean(dim=tuple(range(2, v(0).ndim)), keepdim=True)
        elif op == "MaxPool":
            out = _max_pool(v(0), a)
        elif op == "Reshape":
            x = v(0)
            shape = [int(d) for d in np.asarray(v(1)).ravel()]
            if not a.get("allowzero", 0):
                shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
            out = x.reshape(shape)
        elif op == "Flatten":
            axis = a.get("axis", 1)
            out = v(0).reshape(int(np.prod(v(0).shape[:axis])), -1)
        else:  # Identity
            out = v(0)
        env[node.output[0]] = out

    def release(self, node: Any, *envs: dict[str, Any]) -> None:
        """Drop from ``envs`` the inputs no later node reads."""
        for i in node.input:
            if i in self.uses:
                self.uses[i] -= 1
                if self.uses[i] == 0:
                    for env in envs:
                        env.pop(i, None)


def _max_pool(x: Any, a: dict[str, Any]) -> Any:
    """ONNX MaxPool (2-D, NCHW) in torch: explicit pads as -inf (ONNX pads are [top, left, bottom, right])."""
    import torch.nn.functional as F

    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(a["kernel_shape"]) != 2:
        raise UnsupportedError("AdaRound's graph runner handles 2-D MaxPool with explicit pads only",
                               reason="unsupported ops")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if any(pads):
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=-math.inf)
    return F.max_pool2d(x, tuple(a["kernel_shape"]), stride=tuple(a.get("strides", [1, 1])),
                        dilation=tuple(a.get("dilations", [1, 1])), ceil_mode=bool(a.get("ceil_mode", 0)))


def fake_quant_uint8(x: Any, lo: float, hi: float) -> Any:
    """``x`` through a uint8 QuantizeLinear -> DequantizeLinear pair for the range [lo, hi] (torch), the scale
    and zero point ONNX Runtime derives from that range (the range widened to hold 0)."""
    import torch

    scale, zero_point = uint8_params(lo, hi)
    return (torch.clamp(torch.round(x / scale) + zero_point, 0, 255) - zero_point) * scale


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of asymmetric uint8 for [lo, hi] as ONNX Runtime computes them (float32 scale)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = float(np.float32((hi - lo) / 255.0)) if hi > lo else 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def adaround_onnx(model: bytes, calibration: CalibrationData, config: AdaRoundConfig | None = None, *,
                  activation_ranges: Mapping[str, tuple[float, float]] | None = None,
                  grids: Mapping[str, np.ndarray] | None = None) -> tuple[bytes, AdaRoundReport]:
    """Learn the int8 rounding of every Conv/Gemm weight (see the module doc); returns the float model with
    its weights on the int8 grid (and corrected biases with ``bias_correction``) and a per-layer report.

    ``activation_ranges`` (tensor name -> (lo, hi), e.g. :func:`edgeseal.converters.ranges.activation_ranges`
    of the static int8 model) puts each of those tensors through its uint8 quantize -> dequantize in the
    rounded model's pass: every layer then learns its rounding, and its bias correction, from inputs that
    carry the activation rounding the int8 model will have, against the float model's output.

    ``grids`` (weight initializer name -> its step per output channel, shaped to broadcast against the weight)
    rounds those weights to that uniform grid instead of the int8 one (levels -127..127 of the step, no level
    pinned, since the step does not depend on the largest weight): how :func:`edgeseal.converters.cluster.adaround_grids`
    learns the rounding of entropy-coded grids. Only those weights are rounded then."""
    import onnx
    import torch
    from onnx import numpy_helper

    config = config or AdaRoundConfig()
    feeds = as_feeds(model, calibration, limit=config.samples, batch_size=8)
    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    init_protos = {i.name: i for i in g.initializer}
    weight_users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            weight_users[i] = weight_users.get(i, 0) + 1
    todo = [n for n in g.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in inits]
    if grids is not None:
        todo = [n for n in todo if n.input[1] in grids]
    if config.layers:
        unknown = sorted(set(config.layers) - {n.name for n in todo})
        if unknown:
            raise ConfigError(f"layers {unknown} are not Conv/Gemm nodes with constant weights in this model")
        todo = [n for n in todo if n.name in set(config.layers)]
    if not todo:
        raise ConfigError("the model has no Conv or Gemm with a constant weight; nothing to round")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    readers_of = consumers(g)
    done, skipped = [], []
    (name_in,) = {i.name for i in g.input} - set(inits)
    x0 = torch.from_numpy(np.concatenate([f[name_in] for f in feeds]).astype(np.float32))
    graph = _Graph(g, inits)
    todo_names = {n.name for n in todo}
    ranges = dict(activation_ranges or {})

    def requantize(name: str, t: Any) -> Any:
        return fake_quant_uint8(t, *ranges[name]) if name in ranges else t

    env_q, env_f = {name_in: requantize(name_in, x0)}, {name_in: x0}  # earlier layers rounded / the float model
    rounded: dict[str, Any] = {}
    with progress("adaround", len(todo)) as bar, torch.no_grad():
        for node in g.node:
            if node.name in todo_names:
                bar.advance()
                step = None if grids is None else np.asarray(grids[node.input[1]], np.float64)
                result = _one_layer(node, env_q, env_f, inits, weight_users, readers_of, config, rng, skipped, step)
                if result is not None:
                    layer_report, w_grid, b_new = result
                    done.append(layer_report)
                    rounded[node.input[1]] = torch.from_numpy(w_grid)
                    init_protos[node.input[1]].CopyFrom(numpy_helper.from_array(w_grid, node.input[1]))
                    if b_new is not None:
                        if len(node.input) > 2 and node.input[2]:
                            init_protos[node.input[2]].CopyFrom(numpy_helper.from_array(b_new, node.input[2]))
                        else:
                            while len(node.input) < 3:
                                node.input.append("")
                            node.input[2] = node.name + "_adaround_bias"
                            g.initializer.append(numpy_helper.from_array(b_new, node.input[2]))
                            inits[node.input[2]] = b_new
                        rounded[node.input[2]] = torch.from_numpy(b_new)
            graph.step(node, env_q, rounded)
            for o in node.output:
                if o in ranges and o in env_q:
                    env_q[o] = requantize(o, env_q[o])
            graph.step(node, env_f)
            graph.release(node, env_q, env_f)
    model = proto.SerializeToString()
    return model, AdaRoundReport(tuple(done), tuple(skipped))


def _one_layer(node: Any, env_q: dict[str, Any], env_f: dict[str, Any], inits: dict[str, np.ndarray],
               weight_users: dict[str, int], readers_of: dict[str, list[Any]], config: AdaRoundConfig,
               rng: np.random.Generator, skipped: list[tuple[str, str]],
               step: np.ndarray | None = None) -> tuple[AdaRoundLayer, np.ndarray, np.ndarray | None] | None:
    """Round one layer (to the int8 grid, or to ``step`` per channel); None (and a line in ``skipped``) when it
    cannot be."""
    import torch

    w = np.array(inits[node.input[1]], dtype=np.float32)
    has_b = len(node.input) > 2 and node.input[2] in inits
    if weight_users.get(node.input[1], 0) != 1 or (has_b and weight_users.get(node.input[2], 0) != 1):
        skipped.append((node.name, "weight or bias shared with another node"))
        return None
    try:
        layer = _Layer(node, w, np.array(inits[node.input[2]], dtype=np.float32) if has_b else None)
    except ValueError as e:
        skipped.append((node.name, str(e)))
        return None
    b = None if layer.b is None else torch.from_numpy(layer.b)
    y = layer(env_f[node.input[0]], torch.from_numpy(w), b)  # the float target
    with torch.enable_grad():
        q, b_new, rec = _round_layer(layer, env_q[node.input[0]], y, _activation(readers_of, node, inits), config, rng,
                                     step)
    return AdaRoundLayer(node.name, *rec), (q * (int8_grid(w, layer.axis) if step is None else step)).astype(np.float32), b_new


def _round_layer(layer: _Layer, x: Any, y: Any, act: tuple[float, float] | None, config: AdaRoundConfig,
                 rng: np.random.Generator, step: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, tuple[float, float, float]]:
    """Learn one layer's rounding from its input ``x`` and float output ``y`` (torch tensors, all samples);
    returns the levels (int8, or of ``step``), the corrected bias (or None) and (mse nearest, mse adaround,
    flipped)."""
    import torch

    w = layer.w.astype(np.float64)
    s = int8_grid(w, layer.axis) if step is None else step
    ws = w / s
    floor = np.floor(ws)
    nearest = np.clip(np.round(ws), -_QMAX, _QMAX)
    # on the int8 grid the largest weight of each channel sits at +-127 exactly and must stay there (it fixes
    # the scale); a given step does not depend on any weight
    pinned = np.abs(nearest) == _QMAX if step is None else np.zeros(w.shape, bool)
    frac = np.clip(ws - floor, 1e-4, 1 - 1e-4)
    v0 = -np.log((_ZETA - _GAMMA) / (frac - _GAMMA) - 1)  # h(v0) = frac: start at the float weight
    V = torch.tensor(v0, dtype=torch.float32, requires_grad=True)
    S = torch.tensor(s, dtype=torch.float32)
    F0 = torch.tensor(floor, dtype=torch.float32)
    B = None if layer.b is None else torch.from_numpy(layer.b)
    lo, hi = act if act is not None else (-math.inf, math.inf)

    def f(t: Any) -> Any:
        return t if act is None else torch.clamp(t, lo, hi)

    def h(v: Any) -> Any:
        return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0, 1)

    xp = layer.padded(x)  # padded once; batches below are cut from it
    target = f(y)
    opt = torch.optim.Adam([V], lr=config.lr)
    n = len(xp)
    warm = int(config.warmup * config.iterations)
    for it in range(config.iterations):
        idx = torch.from_numpy(rng.choice(n, size=min(config.batch_size, n), replace=False))
        xb, tb = layer.crop(xp[idx], target[idx], config.crop, rng)
        wq = S * torch.clamp(F0 + h(V), -_QMAX, _QMAX)
        rec = ((f(layer.unpadded(xb, wq, B)) - tb) ** 2).sum(1).mean()
        if it >= warm:
            beta = config.beta_end + (config.beta_start - config.beta_end) * (
                1 - (it - warm) / max(1, config.iterations - warm))
            loss = rec + config.reg_weight * (1 - (2 * h(V) - 1).abs().pow(beta)).sum()
        else:
            loss = rec
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = np.clip(floor + (h(V).numpy() >= 0.5), -_QMAX, _QMAX)
        q = np.where(pinned, nearest, q)

        def outputs(levels: np.ndarray, bias: Any, upto: int) -> Any:
            wt = torch.tensor(levels * s, dtype=torch.float32)
            return torch.cat([layer.unpadded(xp[i:min(i + 16, upto)], wt, bias) for i in range(0, upto, 16)])

        def mse(out: Any) -> float:
            return float(((f(out) - target[:len(out)]) ** 2).mean())

        m = min(n, _REPORT_SAMPLES)  # the report's errors: a few samples are enough, and they are costly
        mse_nearest = mse(outputs(nearest, B, m))
        b_new = None
        if config.bias_correction:
            # the mean pre-activation shift left after rounding (over every sample), folded into the bias
            out = outputs(q, B, n)
            d = (y - out).double()
            shift = d.mean(dim=tuple(a for a in range(d.ndim) if a != 1)).float()
            b_new = (shift if B is None else B + shift).numpy().astype(np.float32)
            mse_ada = mse(out[:m] + shift.reshape((1, -1) + (1,) * (out.ndim - 2)))
        else:
            mse_ada = mse(outputs(q, B, m))
    return q, b_new, (mse_nearest, mse_ada, float(np.mean(q != nearest)))
