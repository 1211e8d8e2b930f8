"""Latency of several models measured side by side, in one run, reported as ratios.

Timing two models in two separate runs on a shared or throttling machine gives
ratios that flip sign from run to run. ``time_side_by_side`` loads every model
once, then runs rounds in which each model is timed for a few calls in turn
(order rotating per round), and reports each model's median call time plus its
speed ratio to a baseline: the median over rounds of ``baseline / model`` (> 1
is faster), with the 25th-75th percentile range of those per-round ratios.

Only the backend call is timed: ONNX Runtime ``session.run`` with the feed dict
built beforehand; LiteRT ``interpreter.invoke()`` with the input tensor already
set (for an int8-input model the input is quantized with the model's own scale
before timing). Batch 1, one thread.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .metrics import Latency

__all__ = ["SideBySide", "time_side_by_side", "timed_call"]


@dataclasses.dataclass(frozen=True)
class SideBySide:
    """Per-model latency and speed ratio to ``baseline`` from one interleaved run."""

    baseline: str
    latency: dict[str, Latency]
    ratio: dict[str, float]  # baseline time / model time: > 1 faster than the baseline, < 1 slower
    ratio_iqr: dict[str, tuple[float, float]]  # 25th and 75th percentile of the per-round ratios
    rounds: int
    calls_per_round: int
    timed: str  # what exactly was timed

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "latency": {k: v.to_dict() for k, v in self.latency.items()},
            "speed_ratio": dict(self.ratio),
            "speed_ratio_iqr": {k: list(v) for k, v in self.ratio_iqr.items()},
            "rounds": self.rounds,
            "calls_per_round": self.calls_per_round,
            "timed": self.timed,
        }

    def describe(self, name: str) -> str:
        r = self.ratio[name]
        lo, hi = self.ratio_iqr[name]
        word = "faster" if r >= 1 else "slower"
        factor = r if r >= 1 else 1 / r
        return f"{factor:.2f}x {word} than {self.baseline} (per-round ratio {lo:.2f}-{hi:.2f})"


def timed_call(model: bytes, x: np.ndarray, *, threads: int = 1) -> Callable[[], Any]:
    """A zero-argument call that runs ``model`` once on ``x``; all input preparation happens here, not in it."""
    from .infer import detect_format

    x = np.ascontiguousarray(x, dtype=np.float32)
    if detect_format(bytes(model)) == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=bytes(model), num_threads=threads)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        if tuple(inp["shape"]) != tuple(x.shape):
            interp.resize_tensor_input(inp["index"], list(x.shape))
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]
        dtype = np.dtype(inp["dtype"])
        if dtype != np.float32:
            scale, zp = inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.invoke
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(bytes(model), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    return lambda: sess.run(None, feed)


def time_side_by_side(
    models: Mapping[str, bytes],
    x: np.ndarray,
    *,
    baseline: str,
    rounds: int = 30,
    calls_per_round: int = 10,
    warmup: int = 20,
    threads: int = 1,
) -> SideBySide:
    """Time every model on the same input ``x`` (batch 1), interleaved, and compare each with ``baseline``."""
    if baseline not in models:
        raise KeyError(f"baseline {baseline!r} is not among the models {list(models)}")
    names = list(models)
    calls = {n: timed_call(models[n], x, threads=threads) for n in names}
    for n in names:
        for _ in range(warmup):
            calls[n]()
    per_call: dict[str, list[float]] = {n: [] for n in names}
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            fn = calls[n]
            times = []
            for _ in range(calls_per_round):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            per_call[n] += times
            per_round[n].append(float(np.median(times)))
    base = np.asarray(per_round[baseline])
    latency, ratio, iqr = {}, {}, {}
    for n in names:
        ms = np.asarray(per_call[n]) * 1e3
        latency[n] = Latency(float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.mean()), len(ms))
        rr = base / np.asarray(per_round[n])
        ratio[n] = float(np.median(rr))
        iqr[n] = (float(np.percentile(rr, 25)), float(np.percentile(rr, 75)))
    timed = "batch 1, 1 thread; ONNX Runtime session.run with a prepared feed / LiteRT invoke() with the input already set"
    return SideBySide(baseline, latency, ratio, iqr, rounds, calls_per_round, timed)
