"""Fine-tuning the channel scales and biases of a grid-quantized ONNX model by distillation from its float teacher.

``cluster_onnx(..., ClusterConfig(method="grid"))`` stores every gridded layer as integer levels (the codebook)
times a float32 scale per output channel, plus a bias (``cluster.grid_model``). The levels are what the
entropy-coded indices cost; the scales and biases are a few floats per channel in the graph. Training only
those — the analogue of Han et al.'s centroid fine-tuning for a grid: each channel's shared step is learnt, every
index stays — leaves the encoded size unchanged and recovers part of the accuracy that coarse steps lose.

The model is run in PyTorch by a small interpreter of its ONNX graph (the ops below), so no torch module has to
match the exported, batch-norm-folded graph; the target is the float teacher's output on the same unlabelled
inputs (mean squared error of the logits), computed by ONNX Runtime once. Only the given inputs are used.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = ["GridFinetuneConfig", "GridFinetuneReport", "finetune_grid", "grid_parameters"]

_LAYERS = ("Conv", "Gemm", "MatMul")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridFinetuneConfig:
    """``steps`` Adam steps on random batches of ``batch_size`` inputs, learning rate ``lr`` (scales are learnt
    as ``scale * (1 + d)``, biases as ``bias + e``; both ``d`` and ``e`` start at 0), ``threads`` for torch.
    ``loss``: ``"kl"`` — KL divergence of the softmax at ``temperature`` from the teacher's (a classifier's
    logits), times ``temperature**2``; ``"mse"`` — mean squared error of the outputs (any model)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    loss: str = "kl"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        checks = [(self.steps >= 1, f"steps={self.steps} must be >= 1"),
                  (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
                  (self.lr > 0, f"lr={self.lr} must be > 0"), (self.threads >= 1, f"threads={self.threads} must be >= 1"),
                  (self.loss in ("kl", "mse"), f"loss={self.loss!r} must be 'kl' or 'mse'"),
                  (self.temperature > 0, f"temperature={self.temperature} must be > 0")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"grid fine-tuning: {message}")


@dataclasses.dataclass(frozen=True)
class GridFinetuneReport:
    """What was trained and how the distillation loss moved (mean over the first and the last 10 steps)."""

    scales: tuple[str, ...]
    biases: tuple[str, ...]
    loss_start: float
    loss_end: float
    steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"scales": len(self.scales), "biases": len(self.biases), "loss_start": self.loss_start,
                "loss_end": self.loss_end, "steps": self.steps, "seconds": self.seconds}


def grid_parameters(model: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(scale initializer -> its Mul node, bias initializer -> its Add node) of the gridded layers of a
    ``cluster.grid_model`` graph: a Conv/Gemm/MatMul output read only by a ``Mul`` with a constant, optionally
    followed by an ``Add`` with a constant."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    readers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    scales, biases = {}, {}
    for n in g.node:
        if n.op_type not in _LAYERS or len(n.input) < 2 or n.input[1] not in inits:
            continue
        after = readers.get(n.output[0], [])
        if len(after) != 1 or after[0].op_type != "Mul" or after[0].input[1] not in inits:
            continue
        mul = after[0]
        if "_grid_scale" not in mul.name:  # grid_model's name for it (made unique with a suffix if taken)
            continue
        scales[mul.input[1]] = mul.name
        nxt = readers.get(mul.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Add" and nxt[0].input[1] in inits and "_grid_bias" in nxt[0].name:
            biases[nxt[0].input[1]] = nxt[0].name
    return scales, biases


class _Graph:
    """The ONNX graph as a torch function of its first input (the ops of image classifiers and MLPs)."""

    def __init__(self, model: bytes, scales: set[str], biases: set[str]) -> None:
        import onnx
        import torch
        from onnx import numpy_helper

        proto = onnx.load_from_string(model)
        self.graph = proto.graph
        self.consts: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.base: dict[str, Any] = {}
        trainable = scales | biases
        for init in self.graph.initializer:
            arr = numpy_helper.to_array(init)
            t = torch.as_tensor(np.array(arr))
            if init.name in trainable:
                self.base[init.name] = t.float()
                self.params[init.name] = torch.nn.Parameter(torch.zeros_like(t, dtype=torch.float32))
            else:
                self.consts[init.name] = t
        self.scales = set(scales)
        self.input = next(i.name for i in self.graph.input if i.name not in self.consts)
        self.output = self.graph.output[0].name
        for node in self.graph.node:
            if node.op_type not in _OPS:
                raise UnsupportedError(f"grid fine-tuning runs the graph in torch and has no {node.op_type} "
                                       f"(node {node.name!r}); fine-tune without it or skip the step",
                                       reason=f"op {node.op_type}")

    def value(self, name: str) -> Any:
        if name in self.params:
            base, d = self.base[name], self.params[name]
            return base * (1 + d) if name in self.scales else base + d
        return self.consts[name]

    def __call__(self, x: Any) -> Any:
        import onnx

        env = {self.input: x}
        for node in self.graph.node:
            args = [env[i] if i in env else (self.value(i) if i else None) for i in node.input]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            env[node.output[0]] = _OPS[node.op_type](args, attrs)
        return env[self.output]


def _conv(args: list, a: dict) -> Any:
    import torch.nn.functional as F

    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    nd = w.dim() - 2
    pads = list(a.get("pads", [0] * 2 * nd))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedError("grid fine-tuning supports Conv with explicit pads only", reason="auto_pad")
    begin, end = pads[:nd], pads[nd:]
    if begin != end:
        x = F.pad(x, [p for i in reversed(range(nd)) for p in (begin[i], end[i])])
        begin = [0] * nd
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, b, stride=a.get("strides", 1), padding=begin, dilation=a.get("dilations", 1),
              groups=a.get("group", 1))


def _pool(kind: str) -> Any:
    def run(args: list, a: dict) -> Any:
        import torch.nn.functional as F

        x = args[0]
        nd = x.dim() - 2
        kernel = list(a["kernel_shape"])
        pads = list(a.get("pads", [0] * 2 * nd))
        if pads[:nd] != pads[nd:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or nd != 2:
            raise UnsupportedError(f"grid fine-tuning supports 2-D {kind} with symmetric explicit pads only",
                                   reason=f"{kind} padding")
        strides = a.get("strides", kernel)
        if kind == "MaxPool":
            return F.max_pool2d(x, kernel, strides, pads[:nd], a.get("dilations", 1), bool(a.get("ceil_mode", 0)))
        return F.avg_pool2d(x, kernel, strides, pads[:nd], bool(a.get("ceil_mode", 0)),
                            bool(a.get("count_include_pad", 0)))

    return run


def _gemm(args: list, a: dict) -> Any:
    x, w = args[0], args[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    if len(args) > 2 and args[2] is not None:
        y = y + a.get("beta", 1.0) * args[2]
    return y


def _reduce_mean(args: list, a: dict) -> Any:
    axes = args[1].tolist() if len(args) > 1 and args[1] is not None else a.get("axes")
    x = args[0]
    if axes is None:
        axes = list(range(x.dim()))
    return x.mean(dim=[int(i) for i in axes], keepdim=bool(a.get("keepdims", 1)))


def _reshape(args: list, a: dict) -> Any:
    shape = [int(s) for s in args[1].tolist()]
    if not a.get("allowzero", 0):
        shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return args[0].reshape(shape)


def _clip(args: list, a: dict) -> Any:
    lo = args[1] if len(args) > 1 and args[1] is not None else a.get("min")
    hi = args[2] if len(args) > 2 and args[2] is not None else a.get("max")
    return args[0].clamp(min=None if lo is None else float(lo), max=None if hi is None else float(hi))


_OPS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": lambda args, a: args[0] @ args[1],
    "Add": lambda args, a: args[0] + args[1], "Mul": lambda args, a: args[0] * args[1],
    "Sub": lambda args, a: args[0] - args[1], "Div": lambda args, a: args[0] / args[1],
    "Clip": _clip, "Relu": lambda args, a: args[0].clamp(min=0), "Sigmoid": lambda args, a: args[0].sigmoid(),
    "ReduceMean": _reduce_mean, "Reshape": _reshape, "Identity": lambda args, a: args[0],
    "Flatten": lambda args, a: args[0].reshape(math.prod(args[0].shape[:a.get("axis", 1)]), -1),
    "MaxPool": _pool("MaxPool"), "AveragePool": _pool("AveragePool"),
    "GlobalAveragePool": lambda args, a: args[0].mean(dim=list(range(2, args[0].dim())), keepdim=True),
}


def finetune_grid(model: bytes, teacher: bytes, x: np.ndarray, config: GridFinetuneConfig | None = None, *,
                  targets: np.ndarray | None = None) -> tuple[bytes, GridFinetuneReport]:
    """Train the channel scales and biases of ``model`` (a ``cluster.grid_model`` graph) to reproduce ``teacher``'s
    first output on the inputs ``x``. Returns the model with the trained values written into those initializers
    (float32; every other byte of the model, the integer levels included, unchanged) and a report.
    ``targets`` overrides the teacher's outputs (as computed by ONNX Runtime on ``x``)."""
    import time

    import torch

    from .infer import runner_for

    config = config or GridFinetuneConfig()
    scales, biases = grid_parameters(model)
    if not scales:
        raise ConfigError("the model has no gridded layers (a Conv/Gemm/MatMul followed by its _grid_scale Mul): "
                          "build it with cluster_onnx(..., ClusterConfig(method='grid'))")
    t0 = time.time()
    x = np.asarray(x, np.float32)
    y = np.asarray(targets if targets is not None else runner_for(teacher).run_batched(x, 32), np.float32)
    if len(y) != len(x):
        raise ConfigError(f"{len(x)} inputs but {len(y)} targets")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        net = _Graph(model, set(scales), set(biases))
        opt = torch.optim.Adam(list(net.params.values()), lr=config.lr)
        rng = np.random.default_rng(config.seed)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        losses = []
        for _ in range(config.steps):
            idx = torch.as_tensor(rng.choice(len(x), size=min(config.batch_size, len(x)), replace=False))
            out = net(xt[idx])
            if config.loss == "mse":
                loss = torch.mean((out - yt[idx]) ** 2)
            else:
                t = config.temperature
                loss = torch.nn.functional.kl_div(torch.log_softmax(out / t, -1), torch.log_softmax(yt[idx] / t, -1),
                                                  log_target=True, reduction="batchmean") * t * t
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            trained = {n: net.value(n).detach().numpy().astype(np.float32) for n in net.params}
    finally:
        torch.set_num_threads(threads)
    from .cluster import apply_clusters

    tuned = apply_clusters(model, trained)
    k = min(10, len(losses))
    report = GridFinetuneReport(tuple(sorted(scales)), tuple(sorted(biases)), float(np.mean(losses[:k])),
                                float(np.mean(losses[-k:])), config.steps, round(time.time() - t0, 1))
    return tuned, report

