"""Per-layer int8 error localization and the accuracy budget.

``layer_errors`` runs the float model and its int8 version side by side on the
same inputs, reads every intermediate tensor the two graphs share, and reports
for each node the signal-to-quantization-noise ratio (SQNR, dB) of its output
and how much noise the node itself added beyond its noisiest input — the error
the node *adds*, which is what localizes a bad layer (accumulated error alone just
grows towards the output).

``quantize_within_budget`` quantizes, measures the score drop against float,
and while the drop exceeds ``max_drop`` keeps the worst-ranked quantized
nodes in float (ORT's ``nodes_to_exclude``), re-quantizing each time. Its
``QuantReport`` says which nodes were excluded, the score at each step, and
what the exclusions cost in size and latency.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.fidelity import sqnr_db  # one SQNR for compress, verify and localization

from .common import progress
from .metrics import Latency
from .quantize import (
    CalibrationData,
    OnnxDynamicConfig,
    OnnxStaticConfig,
    as_feeds,
    preprocess_onnx,
    TfliteInt8Config,
    quantize_onnx_dynamic,
    quantize_onnx_static,
    quantize_tflite_int8,
    tflite_op_outputs,
)

__all__ = [
    "LayerError",
    "layer_errors",
    "BudgetStep",
    "QuantReport",
    "quantize_within_budget",
    "tflite_op_sensitivity",
    "tflite_within_budget",
    "sqnr_db",
]

OnnxQuantConfig = Union[OnnxStaticConfig, OnnxDynamicConfig]


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Error of one node after quantization, measured on the tensor it produces."""

    node: str  # node name in the float graph (what ``exclude_nodes`` takes)
    op_type: str
    output: str
    sqnr_db: float  # this node's output, int8 model vs float model (higher is better)
    added_noise: float  # noise/signal power this node adds beyond its noisiest input (leave_one_out ranking: score gained in float)
    quantized: bool  # whether the quantizer touched this node (a candidate to keep in float)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sqnr_db"] = None if not math.isfinite(self.sqnr_db) else round(self.sqnr_db, 3)
        d["added_noise"] = float(f"{self.added_noise:.4g}")
        return d


_DQ = "DequantizeLinear"
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def _collect(model: bytes, names: list[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    from .probe import intermediate_session

    sess = intermediate_session(model, names)  # intermediate tensors: ORT directly, optimizations off
    wanted = set(names)
    outs = [o.name for o in sess.get_outputs() if o.name in wanted]
    acc: dict[str, list[np.ndarray]] = {n: [] for n in outs}
    for feed in feeds:
        for n, v in zip(outs, sess.run(outs, feed)):
            acc[n].append(np.asarray(v, dtype=np.float32).ravel())
    return {n: np.concatenate(v) for n, v in acc.items() if v}


def layer_errors(
    float_model: bytes, quant_model: bytes, data: CalibrationData, *, samples: int = 32
) -> list[LayerError]:
    """Side-by-side run of float and int8 models; per-node errors, largest added noise first.

    ``float_model`` must be the graph the int8 model was quantized from (after any preprocessing),
    so node and tensor names line up. Each compute node of the int8 graph is matched to the float
    tensor it produces (its dequantized value when the quantizer added Q/DQ after it); the node
    keeps its float-graph name, so the result feeds ``exclude_nodes`` directly.
    """
    import onnx

    feeds = as_feeds(float_model, data, limit=samples, batch_size=8)
    fq = onnx.load_from_string(float_model)
    qq = onnx.load_from_string(quant_model)
    f_producer = {o: n for n in fq.graph.node for o in n.output}
    f_names = {n.name for n in fq.graph.node}
    q_producer = {o: n for n in qq.graph.node for o in n.output}
    q_tensors = set(q_producer)

    def q_value_name(t: str) -> str:
        dq = f"{t}_DequantizeLinear_Output"
        return dq if dq in q_tensors else t

    def float_name(t: str) -> str:
        return t[: -len("_DequantizeLinear_Output")] if t.endswith("_DequantizeLinear_Output") else t

    compute = [n for n in qq.graph.node if n.op_type not in _QDQ_OPS and n.op_type != "Constant"]
    pairs: dict[str, str] = {}  # float tensor -> int8-side tensor carrying the same value
    renamed: dict[str, str] = {}  # int8 output name -> float name (ORT renames a graph output's producer)
    for n in compute:
        for o in n.output:
            if o in f_producer:
                pairs[o] = q_value_name(o)
            elif o.endswith("_QuantizeLinear_Input") and o[: -len("_QuantizeLinear_Input")] in f_producer:
                renamed[o] = o[: -len("_QuantizeLinear_Input")]
                pairs[renamed[o]] = renamed[o]
    f_acts = _collect(float_model, list(pairs), feeds)
    q_acts = _collect(quant_model, sorted(set(pairs.values())), feeds)
    sq: dict[str, float] = {}
    for f_t, q_t in pairs.items():
        if f_t in f_acts and q_t in q_acts and f_acts[f_t].shape == q_acts[q_t].shape:
            sq[f_t] = sqnr_db(f_acts[f_t], q_acts[q_t])
    nsr = lambda db: 0.0 if db == math.inf else (math.inf if db == -math.inf else 10 ** (-db / 10))  # noqa: E731
    out = []
    for n in compute:
        o = next((renamed.get(o, o) for o in n.output if renamed.get(o, o) in sq), None)
        if o is None:
            continue
        name = n.name if n.name in f_names else f_producer[o].name
        op_type = next((f.op_type for f in fq.graph.node if f.name == name), n.op_type)
        in_noise = [nsr(sq[float_name(i)]) for i in n.input if float_name(i) in sq]
        quantized = n.op_type != op_type or any(i in q_producer and q_producer[i].op_type == _DQ for i in n.input)
        quantized = quantized or n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger")
        added = nsr(sq[o]) - (max(in_noise) if in_noise else 0.0)
        out.append(LayerError(name, op_type, o, sq[o], added, quantized))
    out.sort(key=lambda e: -e.added_noise)
    return out


# --------------------------------------------------------------------------- the budget loop


@dataclasses.dataclass(frozen=True)
class BudgetStep:
    excluded: tuple[str, ...]
    score: float
    drop: float
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class QuantReport:
    """What the budget loop did: baseline, each attempt, the layers kept in float and what they cost."""

    mode: str
    metric: str
    max_drop: float
    float_score: float
    steps: tuple[BudgetStep, ...]
    layers: tuple[LayerError, ...]
    float_size: int
    int8_size: int  # every quantizable node quantized (first attempt)
    final_size: int
    float_latency: Latency | None
    int8_latency: Latency | None
    final_latency: Latency | None
    met: bool
    chosen: int = -1  # the step whose model is returned: the first that meets the budget, else the smallest drop
    reference_score: float | None = None  # what drops are measured against (None: ``float_score``)

    @property
    def chosen_step(self) -> BudgetStep:
        return self.steps[self.chosen]

    @property
    def excluded(self) -> tuple[str, ...]:
        return self.chosen_step.excluded

    @property
    def final_score(self) -> float:
        return self.chosen_step.score

    def to_dict(self) -> dict[str, Any]:
        lat = lambda l: None if l is None else l.to_dict()  # noqa: E731
        return {
            "mode": self.mode,
            "metric": self.metric,
            "max_drop": self.max_drop,
            "met": self.met,
            "chosen_step": self.chosen % len(self.steps),
            "reference_score": self.float_score if self.reference_score is None else self.reference_score,
            "float_score": self.float_score,
            "final_score": self.final_score,
            "excluded": list(self.excluded),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "layers": [e.to_dict() for e in self.layers],
            "size_bytes": {"float": self.float_size, "int8_all": self.int8_size, "final": self.final_size},
            "latency": {"float": lat(self.float_latency), "int8_all": lat(self.int8_latency), "final": lat(self.final_latency)},
        }

    def summary(self) -> str:
        ref = "" if self.reference_score is None else f", reference {self.reference_score:.4f}"
        lines = [
            f"int8 ({self.mode}) {self.metric}: float {self.float_score:.4f}{ref}, all-int8 {self.steps[0].score:.4f}, "
            f"chosen {self.final_score:.4f} (step {self.chosen % len(self.steps) + 1} of {len(self.steps)}; "
            f"max drop {self.max_drop}: {'met' if self.met else 'NOT met'})",
            f"excluded from quantization by the budget loop: {', '.join(self.excluded) or 'none'}",
            f"size: float {self.float_size:,} B, all-int8 {self.int8_size:,} B, final {self.final_size:,} B",
        ]
        if self.float_latency and self.int8_latency and self.final_latency:
            lines.append(
                f"latency p50: float {self.float_latency.p50_ms:.3f} ms, all-int8 {self.int8_latency.p50_ms:.3f} ms, "
                f"final {self.final_latency.p50_ms:.3f} ms"
            )
        worst = [f"{e.node} ({e.op_type}, {e.sqnr_db:.1f} dB)" for e in self.layers if e.quantized][:5]
        lines.append("worst layers (by noise added): " + (", ".join(worst) or "not measured"))
        return "\n".join(lines)


def _quantize(model: bytes, data: CalibrationData | None, config: OnnxQuantConfig) -> bytes:
    if isinstance(config, OnnxDynamicConfig):
        return quantize_onnx_dynamic(model, config)
    if data is None:
        raise ConfigError("static int8 needs calibration data")
    return quantize_onnx_static(model, data, config)


def quantize_within_budget(
    float_model: bytes,
    config: OnnxQuantConfig,
    *,
    score: Callable[[bytes], float],
    max_drop: float,
    calibration: CalibrationData | None = None,
    probe: CalibrationData | None = None,
    metric: str = "score",
    max_excluded: int = 8,
    ranking: str = "noise",
    latency_input: dict[str, np.ndarray] | np.ndarray | None = None,
    show_progress: bool = True,
    reference_score: float | None = None,
) -> tuple[bytes, QuantReport]:
    """Quantize ``float_model`` and keep its worst layers in float until ``score`` drops by at most ``max_drop``.

    Drops are measured against ``reference_score`` when given (e.g. the original model before pruning,
    so pruning and int8 share one budget), else against ``float_model``'s own score. The model
    returned is the first attempt that meets the budget; when none does, the attempt with the
    smallest drop (``report.chosen`` says which, ``report.met`` is False).

    ``score(model_bytes) -> float`` is higher-is-better (e.g. accuracy in points, mean cosine).
    ``probe`` (default: the calibration data) feeds the side-by-side layer error run.
    ``ranking`` orders the candidates: ``noise`` by the noise each node adds in one side-by-side
    run (cheap); ``leave_one_out`` by the score gained when that node alone stays float (one
    quantization + score per quantized node; finds layers whose *inputs* carry the outliers).
    ``latency_input`` (one batch) enables latency measurement of float, all-int8 and final models.
    Returns the final model bytes and the ``QuantReport``; ``report.met`` says whether the budget held.
    """
    if max_drop < 0:
        raise ConfigError(f"max_drop={max_drop} must be >= 0")
    if config.preprocess:
        float_model = preprocess_onnx(float_model)
        config = config.replace(preprocess=False)
    base_excluded = tuple(config.exclude_nodes)
    float_score = score(float_model)
    ref = float_score if reference_score is None else reference_score
    first = _quantize(float_model, calibration, config)
    steps = [BudgetStep(base_excluded, s := score(first), ref - s, len(first))]
    best = _Best(first, 0, steps[0].drop)
    probe_data = probe if probe is not None else calibration
    layers: list[LayerError] = []
    current = first
    if steps[-1].drop > max_drop:
        if probe_data is None:
            raise ConfigError("layer error localization needs probe data (calibration or probe)")
        layers = layer_errors(float_model, first, probe_data)
        candidates = [e.node for e in layers if e.quantized and e.node not in base_excluded]
        if ranking == "leave_one_out":
            gains = {}
            with progress("leave-one-out sensitivity", len(candidates), enabled=show_progress) as bar:
                for node in candidates:
                    m = _quantize(float_model, calibration, config.replace(exclude_nodes=base_excluded + (node,)))
                    gains[node] = score(m) - steps[0].score
                    bar.advance()
            candidates.sort(key=lambda n: -gains[n])
            layers = [dataclasses.replace(e, added_noise=gains.get(e.node, 0.0)) for e in layers]
            layers.sort(key=lambda e: -e.added_noise)
        elif ranking != "noise":
            raise ConfigError(f"ranking={ranking!r} must be 'noise' or 'leave_one_out'")
        candidates = candidates[:max_excluded]
        excluded = list(base_excluded)
        with progress("keep worst layers in float", len(candidates), enabled=show_progress) as bar:
            for node in candidates:
                excluded.append(node)
                current = _quantize(float_model, calibration, config.replace(exclude_nodes=tuple(excluded)))
                s = score(current)
                steps.append(BudgetStep(tuple(excluded), s, ref - s, len(current)))
                best.offer(current, len(steps) - 1, steps[-1].drop)
                bar.advance()
                if steps[-1].drop <= max_drop:
                    break
    elif probe_data is not None:
        layers = layer_errors(float_model, first, probe_data)
    lat = _side_by_side(latency_input, (float_model, first, best.model))
    mode = "dynamic" if isinstance(config, OnnxDynamicConfig) else "static"
    return best.model, _budget_report(mode, metric, max_drop, float_score, steps, layers, (float_model, first, best.model),
                                      lat, best.index, reference_score)


def _side_by_side(latency_input: Any, models: Sequence[bytes]) -> list[Latency | None]:
    """Latency of the float model, the all-int8 one and the returned one, timed interleaved in one run
    (``converters.latency``); three Nones when no latency input was given."""
    if latency_input is None:
        return [None, None, None]
    from .latency import time_side_by_side

    x = latency_input if isinstance(latency_input, dict) else np.asarray(latency_input, np.float32)
    speed = time_side_by_side(dict(zip(("float", "int8_all", "final"), models)), x, baseline="float",
                              rounds=10, calls_per_round=10, warmup=10)
    return [speed.latency["float"], speed.latency["int8_all"], speed.latency["final"]]


class _Best:
    """The attempt to return: the first within budget (the loop stops there), else the smallest drop so far."""

    def __init__(self, model: bytes, index: int, drop: float) -> None:
        self.model, self.index, self.drop = model, index, drop

    def offer(self, model: bytes, index: int, drop: float) -> None:
        if drop < self.drop:
            self.model, self.index, self.drop = model, index, drop


# --------------------------------------------------------------------------- TFLite

_TFLITE_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV")


def _tflite_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    from .infer import TfliteRunner

    return TfliteRunner(model).run_batched(x)


def tflite_op_sensitivity(
    float_model: bytes, representative: np.ndarray, probe: np.ndarray, config: TfliteInt8Config | None = None
) -> list[LayerError]:
    """For each weight op of a TFLite model: the model output's SQNR when only that op stays in float.

    TFLite has no shared tensor names between float and int8 graphs to compare layer by layer,
    so the localization is leave-one-in-float: ``added_noise`` is the output noise (relative
    power) that quantizing this op costs — all-int8 noise minus the noise with this op in float.
    Worst first.
    """
    config = config or TfliteInt8Config()
    ref = _tflite_outputs(float_model, probe)
    nsr = lambda db: 0.0 if db == math.inf else 10 ** (-db / 10)  # noqa: E731
    base = sqnr_db(ref, _tflite_outputs(quantize_tflite_int8(float_model, representative, config), probe))
    out = []
    for op, name in tflite_op_outputs(float_model):
        if op not in _TFLITE_WEIGHT_OPS:
            continue
        keep = tuple(config.keep_float) + (name,)
        db = sqnr_db(ref, _tflite_outputs(quantize_tflite_int8(float_model, representative, dataclasses.replace(config, keep_float=keep)), probe))
        out.append(LayerError(name, op, name, db, nsr(base) - nsr(db), True))
    out.sort(key=lambda e: -e.added_noise)
    return out


def tflite_within_budget(
    float_model: bytes,
    representative: np.ndarray,
    config: TfliteInt8Config | None = None,
    *,
    score: Callable[[bytes], float],
    max_drop: float,
    probe: np.ndarray | None = None,
    metric: str = "score",
    max_excluded: int = 4,
    latency_input: np.ndarray | None = None,
    show_progress: bool = True,
    reference_score: float | None = None,
) -> tuple[bytes, QuantReport]:
    """Full int8 TFLite; while ``score`` drops by more than ``max_drop``, keep the most sensitive ops in float.

    Drops, the returned attempt and ``reference_score`` work as in ``quantize_within_budget``.
    """
    if max_drop < 0:
        raise ConfigError(f"max_drop={max_drop} must be >= 0")
    config = config or TfliteInt8Config()
    float_score = score(float_model)
    ref = float_score if reference_score is None else reference_score
    first = quantize_tflite_int8(float_model, representative, config)
    steps = [BudgetStep(tuple(config.keep_float), s := score(first), ref - s, len(first))]
    best = _Best(first, 0, steps[0].drop)
    current = first
    layers: list[LayerError] = []
    if steps[-1].drop > max_drop:
        probe_x = representative if probe is None else probe
        layers = tflite_op_sensitivity(float_model, representative, probe_x[:64], config)
        keep = list(config.keep_float)
        candidates = [e.node for e in layers][:max_excluded]
        with progress("keep worst ops in float", len(candidates), enabled=show_progress) as bar:
            for name in candidates:
                keep.append(name)
                current = quantize_tflite_int8(float_model, representative, dataclasses.replace(config, keep_float=tuple(keep)))
                s = score(current)
                steps.append(BudgetStep(tuple(keep), s, ref - s, len(current)))
                best.offer(current, len(steps) - 1, steps[-1].drop)
                bar.advance()
                if steps[-1].drop <= max_drop:
                    break
    lat = _side_by_side(latency_input, (float_model, first, best.model))
    return best.model, _budget_report("tflite static", metric, max_drop, float_score, steps, layers,
                                      (float_model, first, best.model), lat, best.index, reference_score)


def _budget_report(mode: str, metric: str, max_drop: float, float_score: float, steps: Sequence[Any],
                   layers: Sequence[Any], models: tuple[bytes, bytes, bytes], lat: Sequence[Any], chosen: int,
                   reference_score: float | None) -> "QuantReport":
    """The report of a budget loop: float, first int8 and final model sizes and latencies, and the steps taken."""
    float_model, first, final = models
    return QuantReport(
        mode=mode,
        metric=metric,
        max_drop=max_drop,
        float_score=float_score,
        steps=tuple(steps),
        layers=tuple(layers),
        float_size=len(float_model),
        int8_size=len(first),
        final_size=len(final),
        float_latency=lat[0],
        int8_latency=lat[1],
        final_latency=lat[2],
        met=steps[chosen].drop <= max_drop,
        chosen=chosen,
        reference_score=reference_score,
    )
