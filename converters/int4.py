"""int4 block-wise weight-only quantization for transformer MatMuls, with ONNX Runtime's own n-bit quantizer.

``MatMulNBitsQuantizer`` (``onnxruntime.quantization.matmul_nbits_quantizer``)
rewrites each MatMul with a constant weight into ``com.microsoft.MatMulNBits``:
4-bit weights in blocks of ``block_size`` input rows, one scale (and, when
asymmetric, a zero point) per block and column; with ``Gather`` in
``op_types`` the embedding tables become ``GatherBlockQuantized``. Algorithms
offered by ONNX Runtime 1.32 and what they need here:

* ``rtn`` — round to nearest per block (ORT's ``DefaultWeightOnlyQuantConfig``, numpy only);
* ``hqq`` — Half-Quadratic Quantization (``HQQWeightOnlyQuantConfig``; ORT runs it with torch; it
  quantizes MatMuls only, so the embedding tables get RTN in a second pass);
* ``gptq`` — ORT delegates it (and its other RTN) to Intel Neural Compressor, which edgeseal does not
  install: asked for, it raises ``UnsupportedError`` saying so.

``int4_within_budget`` quantizes every eligible MatMul, scores the result, and
while the drop exceeds ``max_drop`` moves the most sensitive MatMuls (ranked by
the output noise of quantizing each one alone) to a ``fallback``: dynamic int8
(per-channel) or float.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .common import as_enum
from .export import quiet

__all__ = ["Int4Algorithm", "Fallback", "Int4Config", "Int4Step", "Int4Report", "weight_matmuls",
           "quantize_onnx_int4", "int4_within_budget"]


class Int4Algorithm(str, enum.Enum):
    RTN = "rtn"
    HQQ = "hqq"
    GPTQ = "gptq"


class Fallback(str, enum.Enum):
    """Where a MatMul too sensitive for int4 goes."""

    INT8 = "int8"
    FLOAT = "float"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Int4Config:
    """Block-wise int4 weights. ``block_size``: rows per scale (a power of two >= 16); ``symmetric``: no zero
    points; ``accuracy_level``: MatMulNBits' compute type (None: ORT's default; 4 = int8 activations);
    ``embeddings``: also the Gather tables (``GatherBlockQuantized``); ``exclude_nodes`` stay as they are."""

    algorithm: Int4Algorithm = Int4Algorithm.RTN
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = None
    embeddings: bool = True
    exclude_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", as_enum(Int4Algorithm, self.algorithm, "[quantize] algorithm"))
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        if not isinstance(self.block_size, int) or self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ConfigError(f"[quantize] block_size={self.block_size!r} must be a power of two >= 16 (e.g. 32, 64, 128)")
        if self.accuracy_level not in (None, 0, 1, 2, 3, 4):
            raise ConfigError(f"[quantize] accuracy_level={self.accuracy_level!r} must be 0..4 (4: int8 compute) or absent")


def weight_matmuls(model: bytes) -> list[str]:
    """Names of the MatMul nodes whose second input is a float32 initializer (the ones int4 rewrites)."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name: i for i in g.initializer}
    return [n.name for n in g.node if n.op_type == "MatMul" and n.input[1] in inits
            and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT and len(inits[n.input[1]].dims) == 2]


def _algo_config(config: Int4Config) -> Any:
    from onnxruntime.quantization import matmul_nbits_quantizer as mnb

    ops = ("MatMul", "Gather") if config.embeddings else ("MatMul",)
    if config.algorithm is Int4Algorithm.RTN:
        return mnb.DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=config.symmetric,
                                                accuracy_level=config.accuracy_level, op_types_to_quantize=ops)
    if config.algorithm is Int4Algorithm.HQQ:
        try:
            import torch  # noqa: F401  (ORT's HQQ runs on torch)
        except ImportError:
            raise UnsupportedError("int4 algorithm 'hqq' runs on torch in ONNX Runtime; install edgeseal[compress]",
                                   reason="torch missing") from None
        # ORT 1.32's HQQ quantizes MatMuls only ("Gather quantization is not supported yet in HQQ"):
        # quantize_onnx_int4 gives the embedding tables to RTN in a second pass
        return mnb.HQQWeightOnlyQuantConfig(block_size=config.block_size, bits=4, op_types_to_quantize=("MatMul",))
    try:
        import neural_compressor  # noqa: F401
    except ImportError:
        raise UnsupportedError(
            "int4 algorithm 'gptq' is carried out by Intel Neural Compressor inside ONNX Runtime's quantizer, and "
            "neural-compressor is not installed (edgeseal does not depend on it); use algorithm = 'rtn' or 'hqq'",
            reason="neural-compressor missing") from None
    raise UnsupportedError("int4 algorithm 'gptq' needs calibration data wiring edgeseal does not have yet; "
                           "use algorithm = 'rtn' or 'hqq'", reason="gptq not wired")


def quantize_onnx_int4(model: bytes, config: Int4Config | None = None, *, int8_nodes: Sequence[str] = ()) -> bytes:
    """int4 block-wise weights for every weight MatMul (and embedding Gather) not excluded; ``int8_nodes``
    (MatMuls) get dynamic per-channel int8 instead. Returns the new model bytes."""
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mnb

    config = config or Int4Config()
    algo = _algo_config(config)
    if int8_nodes:
        from .quantize import OnnxDynamicConfig, quantize_onnx_dynamic

        keep = [n for n in weight_matmuls(model) if n not in set(int8_nodes)]
        model = quantize_onnx_dynamic(model, OnnxDynamicConfig(per_channel=True, preprocess=False, exclude_nodes=tuple(keep)))
    exclude = list(config.exclude_nodes) + list(int8_nodes)
    proto = onnx.load_from_string(model)
    with quiet():
        q = mnb.MatMulNBitsQuantizer(proto, bits=4, block_size=config.block_size, is_symmetric=config.symmetric,
                                     accuracy_level=config.accuracy_level, nodes_to_exclude=exclude, algo_config=algo)
        q.process()
        out = q.model.model
        if config.algorithm is Int4Algorithm.HQQ and config.embeddings:
            rtn = mnb.DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=config.symmetric,
                                                   accuracy_level=config.accuracy_level, op_types_to_quantize=("Gather",))
            q = mnb.MatMulNBitsQuantizer(out, bits=4, block_size=config.block_size, is_symmetric=config.symmetric,
                                         nodes_to_exclude=exclude, algo_config=rtn)
            q.process()
            out = q.model.model
    return out.SerializeToString()


@dataclasses.dataclass(frozen=True)
class Int4Step:
    """One attempt: which MatMuls went to the fallback, the score and the file size."""

    fallback_nodes: tuple[str, ...]
    score: float
    size_bytes: int

    @property
    def excluded(self) -> tuple[str, ...]:
        """The MatMuls not in int4 (the budget loop's fallback), as ``QuantReport`` steps name them."""
        return self.fallback_nodes


@dataclasses.dataclass(frozen=True)
class Int4Report:
    """The budget loop: reference score, each attempt, the per-MatMul sensitivities and the verdict."""

    config: Int4Config
    fallback: Fallback
    reference_score: float
    max_drop: float
    steps: tuple[Int4Step, ...]
    sensitivity: dict[str, float]  # MatMul -> output noise power / signal power with only it in int4
    chosen: int
    matmuls: int

    @property
    def chosen_step(self) -> Int4Step:
        return self.steps[self.chosen]

    @property
    def excluded(self) -> tuple[str, ...]:
        return self.chosen_step.fallback_nodes

    @property
    def met(self) -> bool:
        return self.reference_score - self.chosen_step.score <= self.max_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.config.algorithm.value, "block_size": self.config.block_size,
                "symmetric": self.config.symmetric, "embeddings": self.config.embeddings, "fallback": self.fallback.value,
                "reference_score": self.reference_score, "max_drop": self.max_drop, "met": self.met,
                "matmuls": self.matmuls, "chosen": self.chosen,
                "steps": [dataclasses.asdict(s) for s in self.steps], "sensitivity": dict(self.sensitivity)}

    def summary(self) -> str:
        s = self.chosen_step
        return (f"int4 ({self.config.algorithm.value}, blocks of {self.config.block_size}): score {s.score:.4f} vs "
                f"{self.reference_score:.4f} (max drop {self.max_drop:g}: {'met' if self.met else 'NOT met'}); "
                f"{self.matmuls - len(s.fallback_nodes)} of {self.matmuls} weight MatMuls int4, "
                f"{len(s.fallback_nodes)} {self.fallback.value}: {', '.join(s.fallback_nodes) or 'none'}; "
                f"{s.size_bytes:,} bytes; {len(self.steps)} attempts")


def _noise(model: bytes, feeds: Sequence[Mapping[str, np.ndarray]], base: list[list[np.ndarray]]) -> float:
    from .infer import OnnxRunner

    runner = OnnxRunner(model)
    num = den = 0.0
    for feed, ref in zip(feeds, base):
        for o, r in zip(runner.run_feeds(dict(feed)).values(), ref):
            num += float(np.sum((np.asarray(o, np.float64) - r) ** 2))
            den += float(np.sum(r ** 2))
    return num / max(den, 1e-30)


def int4_within_budget(
    model: bytes,
    config: Int4Config | None = None,
    *,
    score: Callable[[bytes], float],
    max_drop: float,
    probe: Sequence[Mapping[str, np.ndarray]],
    fallback: Fallback | str = Fallback.INT8,
    max_fallback: int = 8,
    reference_score: float | None = None,
) -> tuple[bytes, Int4Report]:
    """int4 weights within ``max_drop`` of ``reference_score`` (default: ``score(model)``).

    Every weight MatMul in int4 first; while the drop is too large, the 1, 2, 4, ... most sensitive
    MatMuls (up to ``max_fallback``) go to ``fallback``. Returns the first attempt within the budget,
    else the one with the smallest drop.
    """
    from .infer import OnnxRunner

    config = config or Int4Config()
    fallback = as_enum(Fallback, fallback, "fallback")
    if max_drop < 0 or max_fallback < 0:
        raise ConfigError("max_drop and max_fallback must be >= 0")
    names = [n for n in weight_matmuls(model) if n not in config.exclude_nodes]
    if not names:
        raise UnsupportedError("the model has no MatMul with a constant float32 weight; int4 weight-only "
                               "quantization has nothing to do (Conv models: use [cluster] or int8)",
                               reason="no weight MatMul")
    ref = float(score(model)) if reference_score is None else float(reference_score)
    runner = OnnxRunner(model)
    base = [[np.asarray(o, np.float64) for o in runner.run_feeds(dict(f)).values()] for f in probe]

    def attempt(fall: Sequence[str]) -> tuple[bytes, Int4Step]:
        if fallback is Fallback.INT8:
            out = quantize_onnx_int4(model, config, int8_nodes=fall)
        else:
            out = quantize_onnx_int4(model, dataclasses.replace(config, exclude_nodes=config.exclude_nodes + tuple(fall)))
        return out, Int4Step(tuple(fall), float(score(out)), len(out))

    first, step = attempt(())
    steps, models = [step], [first]
    sensitivity: dict[str, float] = {}
    if ref - step.score > max_drop + 1e-9 and max_fallback > 0:
        for n in names:  # each MatMul alone in int4
            alone = quantize_onnx_int4(model, dataclasses.replace(
                config, embeddings=False, exclude_nodes=tuple(m for m in names if m != n) + config.exclude_nodes))
            sensitivity[n] = _noise(alone, probe, base)
        ranked = sorted(names, key=lambda n: -sensitivity[n])
        k = 1
        while k <= min(max_fallback, len(ranked)):
            out, step = attempt(ranked[:k])
            steps.append(step)
            models.append(out)
            if ref - step.score <= max_drop + 1e-9:
                break
            k = k * 2 if k * 2 <= max_fallback or k == max_fallback else max_fallback
    ok = [i for i, s in enumerate(steps) if ref - s.score <= max_drop + 1e-9]
    chosen = ok[0] if ok else max(range(len(steps)), key=lambda i: steps[i].score)
    report = Int4Report(config, fallback, ref, max_drop, tuple(steps), sensitivity, chosen, len(names))
    return models[chosen], report
