"""What ``edgeseal search`` explores and what it must meet: frozen configs that map 1:1 onto a TOML file.

    trials = 32                     # SearchConfig: at most this many configurations (the whole grid if it is smaller)
    seed = 0
    workers = 2                     # local processes (default: one per CPU core)
    test = "test.npz"               # held-out split: reported for the front, never used to select

    [space]                         # SearchSpace: the values tried per dimension
    prune_ratio = [0.0, 0.25, 0.5]  # structured: fraction of channels removed (0 = no pruning)
    quantization = ["none", "static-per-channel", "static-per-tensor", "static-int8-symmetric", "dynamic"]
    calibration = ["minmax", "percentile", "entropy"]
    max_float_layers = [0, 2]       # layers int8 may keep in float to hold its accuracy drop
    distill = [false, true]         # fine-tune the pruned model with the original as teacher
    cluster = [false, true]         # k-means weight sharing first (budget-chosen centroids per layer)
    finetune_epochs = [8]           # absent: the recipe's [prune] epochs

    [budget]                        # Budget: every point of the front meets all of it
    max_drop = 1.0                  # accuracy points below the fp32 model, on the validation split
    max_size_bytes = 300_000
    max_latency_ms = 0.05           # p50, batch 1, one thread, re-measured side by side

Below int8: ``quantization = ["int4"]`` (block-wise int4 weight MatMuls, ONNX Runtime's
MatMulNBits; transformers) and ``cluster = [true]`` (the sizes of clustered trials are their
codebook-encoded bytes, ``converters.cluster.encoded_size``) are in the space when listed; the
defaults leave them out (int4 does nothing for a Conv model; clustering adds a budget search per trial).

A dimension that does not apply to a configuration collapses (calibration for
``dynamic``/``none``, distillation and epochs without pruning), so the grid
holds distinct configurations only. ``trial_recipe`` turns one of them into a
``CompressRecipe`` derived from the base recipe.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import re
from pathlib import Path
from typing import Any

from edgeseal.converters.common import as_enum
from edgeseal.converters.quantize import Calibration
from edgeseal.runtime.errors import ConfigError, UnsupportedError

from ..compress.recipe import (
    ClusterStage,
    CompressRecipe,
    DistillStage,
    ModelFormat,
    PruneMethod,
    PruneStage,
    QuantizeStage,
    QuantMode,
)
from ..config import build_config

__all__ = [
    "Scheme",
    "SearchSpace",
    "Budget",
    "SearchConfig",
    "TrialConfig",
    "load_search",
    "search_from_dict",
    "grid",
    "choose_trials",
    "trial_recipe",
]


class Scheme(str, enum.Enum):
    """An int8 scheme of ONNX Runtime's quantizer, or none (the model stays fp32)."""

    NONE = "none"
    STATIC_PER_CHANNEL = "static-per-channel"  # QDQ, per-channel weights; activations as the target runs them
    STATIC_PER_TENSOR = "static-per-tensor"  # QDQ, one scale per weight tensor
    STATIC_INT8_SYMMETRIC = "static-int8-symmetric"  # QDQ, int8 activations with zero point 0 (XNNPACK/ARM)
    DYNAMIC = "dynamic"  # weights int8, activations quantized at run time (MatMul/Gemm only)
    INT4 = "int4"  # block-wise int4 weight-only MatMuls (MatMulNBits); sensitive ones dynamic int8

    @property
    def static(self) -> bool:
        return self.value.startswith("static")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _values(obj: Any, name: str) -> tuple[Any, ...]:
    """The field as a non-empty tuple (a scalar becomes a one-value list), duplicates dropped in order."""
    value = getattr(obj, name)
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    _check(len(items) > 0, f"[space] {name} is empty; give at least one value, e.g. {name} = [{_EXAMPLES[name]}]")
    return tuple(dict.fromkeys(items))


_EXAMPLES = {
    "prune_ratio": "0.0, 0.5",
    "quantization": '"static-per-channel"',
    "calibration": '"minmax"',
    "max_float_layers": "0",
    "distill": "false",
    "cluster": "false",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """The values tried per dimension; the grid is their product, minus what does not apply."""

    prune_ratio: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    quantization: tuple[Scheme, ...] = (
        Scheme.NONE,
        Scheme.STATIC_PER_CHANNEL,
        Scheme.STATIC_PER_TENSOR,
        Scheme.STATIC_INT8_SYMMETRIC,
        Scheme.DYNAMIC,
    )
    calibration: tuple[Calibration, ...] = (Calibration.MINMAX, Calibration.PERCENTILE, Calibration.ENTROPY)
    max_float_layers: tuple[int, ...] = (0, 2)
    distill: tuple[bool, ...] = (False, True)
    finetune_epochs: tuple[int, ...] = ()  # empty: the base recipe's [prune] epochs
    cluster: tuple[bool, ...] = (False,)  # True: k-means weight sharing ([cluster] of the base recipe, or defaults)

    def __post_init__(self) -> None:
        ratios = _values(self, "prune_ratio")
        for r in ratios:
            _check(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1,
                   f"[space] prune_ratio has {r!r}; ratios are fractions of channels removed in [0, 1) (0 = no pruning)")
        object.__setattr__(self, "prune_ratio", tuple(float(r) for r in ratios))
        object.__setattr__(self, "quantization",
                           tuple(as_enum(Scheme, s, "[space] quantization") for s in _values(self, "quantization")))
        object.__setattr__(self, "calibration",
                           tuple(as_enum(Calibration, c, "[space] calibration") for c in _values(self, "calibration")))
        floats = _values(self, "max_float_layers")
        for n in floats:
            _check(isinstance(n, int) and not isinstance(n, bool) and n >= 0,
                   f"[space] max_float_layers has {n!r}; give counts of layers (ints >= 0)")
        object.__setattr__(self, "max_float_layers", floats)
        distill = _values(self, "distill")
        for d in distill:
            _check(isinstance(d, bool), f"[space] distill has {d!r}; give true and/or false")
        object.__setattr__(self, "distill", distill)
        cluster = _values(self, "cluster")
        for c in cluster:
            _check(isinstance(c, bool), f"[space] cluster has {c!r}; give true and/or false")
        object.__setattr__(self, "cluster", cluster)
        given = self.finetune_epochs
        epochs = tuple(dict.fromkeys(given)) if isinstance(given, (list, tuple)) else (given,)
        for e in epochs:
            _check(isinstance(e, int) and not isinstance(e, bool) and e >= 0,
                   f"[space] finetune_epochs has {e!r}; give epoch counts (ints >= 0), or leave it out for the recipe's")
        object.__setattr__(self, "finetune_epochs", epochs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """What every point of the front meets. Accuracy is judged on the validation split, never on test."""

    max_drop: float = 1.0  # accuracy points (percent) below the fp32 model
    max_size_bytes: int | None = None  # exported file
    max_latency_ms: float | None = None  # p50, batch 1, one thread, re-measured in the driver

    def __post_init__(self) -> None:
        _check(isinstance(self.max_drop, (int, float)) and self.max_drop >= 0,
               f"[budget] max_drop={self.max_drop!r} must be >= 0 (accuracy points below the fp32 model)")
        if self.max_size_bytes is not None:
            _check(isinstance(self.max_size_bytes, int) and self.max_size_bytes > 0,
                   f"[budget] max_size_bytes={self.max_size_bytes!r} must be a positive number of bytes (or absent)")
        if self.max_latency_ms is not None:
            _check(isinstance(self.max_latency_ms, (int, float)) and self.max_latency_ms > 0,
                   f"[budget] max_latency_ms={self.max_latency_ms!r} must be > 0 milliseconds (or absent)")

    def failures(self, *, drop: float, size_bytes: int, latency_ms: float | None) -> tuple[str, ...]:
        """Why a point misses the budget (empty when it meets it); ``latency_ms`` None: not judged yet."""
        out = []
        if drop > self.max_drop + 1e-9:
            out.append(f"accuracy drop {drop:.2f} > {self.max_drop:g} points")
        if self.max_size_bytes is not None and size_bytes > self.max_size_bytes:
            out.append(f"size {size_bytes:,} > {self.max_size_bytes:,} bytes")
        if self.max_latency_ms is not None and latency_ms is not None and latency_ms > self.max_latency_ms:
            out.append(f"p50 {latency_ms:.4f} > {self.max_latency_ms:g} ms")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RAY_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """A whole search: the space, the budget and how trials run."""

    space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    budget: Budget = dataclasses.field(default_factory=Budget)
    trials: int = 32  # the whole grid when it has at most this many points, else a seeded random sample
    seed: int = 0  # the sample; training uses the recipe's seed
    workers: int | None = None  # local processes; None: one per CPU core
    ray: str | None = None  # None: local processes; "local" (start one in-process), "auto", "ray://HOST:PORT"
    gpus_per_trial: float | None = None  # Ray: None = 1 when the cluster has GPUs, else 0 (0.25 packs 4 per GPU)
    validation: str | None = None  # .npz the budget and the front are judged on (default: the recipe's [data] eval)
    test: str | None = None  # held-out .npz: reported for every trial, never used to select
    latency_runs: int = 300  # the driver's side-by-side re-measurement, per candidate

    def __post_init__(self) -> None:
        _check(isinstance(self.trials, int) and self.trials >= 1, f"trials={self.trials!r} must be an int >= 1")
        _check(isinstance(self.seed, int), f"seed={self.seed!r} must be an int")
        if self.workers is not None:
            _check(isinstance(self.workers, int) and self.workers >= 1,
                   f"workers={self.workers!r} must be an int >= 1 (or absent: one per CPU core)")
        if self.ray is not None:
            _check(isinstance(self.ray, str) and (self.ray in ("auto", "local") or bool(_RAY_ADDRESS.match(self.ray))),
                   f"ray={self.ray!r} must be 'auto' (the cluster this machine belongs to), 'local' (start one here) "
                   "or a cluster address 'ray://HOST:PORT' (the head's client server, port 10001 by default)")
        if self.gpus_per_trial is not None:
            _check(isinstance(self.gpus_per_trial, (int, float)) and 0 <= self.gpus_per_trial,
                   f"gpus_per_trial={self.gpus_per_trial!r} must be >= 0 (a fraction packs several trials on a GPU)")
            _check(self.gpus_per_trial <= 1 or float(self.gpus_per_trial).is_integer(),
                   f"gpus_per_trial={self.gpus_per_trial!r}: above 1, Ray needs a whole number of GPUs")
        _check(isinstance(self.latency_runs, int) and self.latency_runs >= 10,
               f"latency_runs={self.latency_runs!r} must be an int >= 10")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["space"] = {k: [getattr(v, "value", v) for v in vals] for k, vals in d["space"].items()}
        return d


def search_from_dict(data: dict[str, Any], *, base_dir: Path | None = None) -> SearchConfig:
    """A ``SearchConfig`` from parsed TOML; relative ``validation``/``test`` paths resolve against ``base_dir``."""
    config = build_config(SearchConfig, data, "the search file (top level)")
    if base_dir is None:
        return config
    fix = {k: str(base_dir / p) for k in ("validation", "test") if (p := getattr(config, k)) and not Path(p).is_absolute()}
    return dataclasses.replace(config, **fix)


def load_search(path: str | Path) -> SearchConfig:
    """Read a search TOML file (``[space]``, ``[budget]`` and top-level settings) into a ``SearchConfig``."""
    from ..compress.recipe import read_toml

    path = Path(path)
    return search_from_dict(read_toml(path, "search file"), base_dir=path.resolve().parent)


# --------------------------------------------------------------------------- trials


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialConfig:
    """One point of the space, canonical: dimensions that do not apply are None."""

    prune_ratio: float = 0.0
    quantization: Scheme = Scheme.NONE
    calibration: Calibration | None = None  # static schemes only
    max_float_layers: int | None = None  # int8 only
    distill: bool | None = None  # pruned only
    finetune_epochs: int | None = None  # pruned only; None: the recipe's
    cluster: bool = False  # k-means weight sharing before quantization

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantization", as_enum(Scheme, self.quantization, "quantization"))
        if self.calibration is not None:
            object.__setattr__(self, "calibration", as_enum(Calibration, self.calibration, "calibration"))
        _check(0 <= self.prune_ratio < 1, f"prune_ratio={self.prune_ratio} must be in [0, 1)")

    @classmethod
    def canonical(cls, *, prune_ratio: float, quantization: Scheme, calibration: Calibration, max_float_layers: int,
                  distill: bool, finetune_epochs: int | None, cluster: bool = False) -> TrialConfig:
        scheme = as_enum(Scheme, quantization, "quantization")
        pruned = prune_ratio > 0
        return cls(
            prune_ratio=float(prune_ratio),
            quantization=scheme,
            calibration=calibration if scheme.static else None,
            max_float_layers=max_float_layers if scheme is not Scheme.NONE else None,
            distill=distill if pruned else None,
            finetune_epochs=finetune_epochs if pruned else None,
            cluster=bool(cluster),
        )

    @property
    def is_reference(self) -> bool:
        """The fp32 model exported as it is: what accuracy drops are measured against."""
        return self.prune_ratio == 0 and self.quantization is Scheme.NONE and not self.cluster

    def label(self) -> str:
        """A short file-name-safe name, e.g. ``p50-static-per-channel-minmax-f2-kd-e8``."""
        parts = [f"p{round(self.prune_ratio * 100):02d}", self.quantization.value]
        if self.calibration is not None:
            parts.append(self.calibration.value)
        if self.max_float_layers is not None:
            parts.append(f"f{self.max_float_layers}")
        if self.distill is not None:
            parts.append("kd" if self.distill else "ft")
        if self.finetune_epochs is not None:
            parts.append(f"e{self.finetune_epochs}")
        if self.cluster:
            parts.append("cl")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["quantization"] = self.quantization.value
        d["calibration"] = None if self.calibration is None else self.calibration.value
        return d


REFERENCE = TrialConfig()


def grid(space: SearchSpace) -> list[TrialConfig]:
    """Every distinct configuration of the space, in a fixed order, the fp32 reference excluded."""
    epochs: tuple[int | None, ...] = space.finetune_epochs or (None,)
    seen: dict[TrialConfig, None] = {}
    for ratio, scheme, cal, floats, kd, ep, cl in itertools.product(
        space.prune_ratio, space.quantization, space.calibration, space.max_float_layers, space.distill, epochs,
        space.cluster,
    ):
        t = TrialConfig.canonical(prune_ratio=ratio, quantization=scheme, calibration=cal, max_float_layers=floats,
                                  distill=kd, finetune_epochs=ep, cluster=cl)
        if not t.is_reference:
            seen.setdefault(t)
    return list(seen)


def choose_trials(config: SearchConfig) -> list[TrialConfig]:
    """The fp32 reference first, then the grid when it fits in ``trials``, else a seeded sample of it."""
    import numpy as np

    points = grid(config.space)
    if len(points) > config.trials:
        rng = np.random.default_rng(config.seed)
        points = [points[i] for i in sorted(rng.choice(len(points), size=config.trials, replace=False))]
    return [REFERENCE, *points]


def trial_recipe(base: CompressRecipe, trial: TrialConfig, budget: Budget, *, device: str | None = None,
                 latency_runs: int = 50) -> CompressRecipe:
    """The base recipe with this trial's pruning, distillation and quantization (other settings kept).

    Pruning is structured (channels removed, so the exported file really shrinks) and fine-tuned for
    ``finetune_epochs``; with distillation the original model is the teacher. int8 may keep up to
    ``max_float_layers`` layers in float to hold its own drop within ``budget.max_drop``.
    """
    check_base_recipe(base)
    prune = distill = quantize = cluster = None
    if trial.cluster:
        cluster = base.cluster or ClusterStage()
    if trial.prune_ratio > 0:
        p = base.prune or PruneStage()
        epochs = p.epochs if trial.finetune_epochs is None else trial.finetune_epochs
        prune = dataclasses.replace(p, method=PruneMethod.STRUCTURED, ratio=trial.prune_ratio, epochs=epochs)
        if trial.distill:
            distill = base.distill or DistillStage()
    if trial.quantization is not Scheme.NONE:
        q = base.quantize or QuantizeStage()
        common = dict(max_excluded=trial.max_float_layers or 0, max_drop=budget.max_drop)
        if trial.quantization is Scheme.DYNAMIC:
            quantize = dataclasses.replace(q, mode=QuantMode.DYNAMIC, bits=8, **common)
        elif trial.quantization is Scheme.INT4:
            quantize = dataclasses.replace(q, mode=QuantMode.DYNAMIC, bits=4, **common)
        else:
            quantize = dataclasses.replace(
                q,
                mode=QuantMode.STATIC,
                calibration=trial.calibration.value if trial.calibration else q.calibration,
                per_channel=trial.quantization is not Scheme.STATIC_PER_TENSOR,
                activations="int8" if trial.quantization is Scheme.STATIC_INT8_SYMMETRIC else q.activations,
                symmetric_activations=trial.quantization is Scheme.STATIC_INT8_SYMMETRIC or q.symmetric_activations,
                bits=8,
                **common,
            )
    return dataclasses.replace(base, prune=prune, distill=distill, quantize=quantize, cluster=cluster,
                               device=device or base.device, latency_runs=latency_runs)


def check_base_recipe(base: CompressRecipe) -> None:
    """What search needs of the base recipe: ONNX export, no separate student.

    Its [prune] (epochs, lr, batch size, importance) and [distill] (temperature, alpha) tables are the
    settings trials fine-tune with; the method is always structured.
    """
    if base.export.format is not ModelFormat.ONNX:
        raise UnsupportedError(
            f"search explores ONNX Runtime int8 schemes; the recipe exports {base.export.format.value}. "
            "Set [export] format = 'onnx' (and convert the chosen configuration with edgeseal compress)"
        )
    if base.distill is not None and base.distill.student is not None:
        raise ConfigError(
            "search's distillation fine-tunes the pruned model with the original as teacher; remove [distill] "
            f"student = {base.distill.student!r} from the base recipe (or compress that student separately)"
        )
