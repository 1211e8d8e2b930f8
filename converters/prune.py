"""Pruning that counts: structured channel removal (torch-pruning) and unstructured magnitude masks.

Structured pruning really removes channels, so the exported model has fewer
weights and MACs and runs faster. Unstructured pruning zeroes individual
weights (``torch.nn.utils.prune`` masks, global or per layer, optionally on a
gradual cubic schedule during fine-tuning); dense runtimes (ONNX Runtime,
LiteRT/XNNPACK) store and multiply those zeros anyway, so the exported file
only shrinks after compression and latency does not improve — ``measure``
reports both and ``prune_unstructured`` warns about it.

    >>> plan = plan_structured(model, sample, StructuredPruneConfig(ratio=0.5))
    >>> print(plan.summary())                 # inspect before anything is mutated
    >>> pruned, plan = prune_structured(model, sample, StructuredPruneConfig(ratio=0.5))
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .common import as_enum
from .metrics import Latency, measure_latency

__all__ = [
    "Importance",
    "StructuredPruneConfig",
    "LayerChannels",
    "LayerParams",
    "layer_params",
    "unprunable_layers",
    "PruningPlan",
    "plan_structured",
    "prune_structured",
    "Scope",
    "UnstructuredPruneConfig",
    "GradualPruner",
    "prune_unstructured",
    "sparsity",
    "ModelStats",
    "measure",
    "SparsityWarning",
]


class Importance(str, enum.Enum):
    """How torch-pruning ranks channels: L1 or L2 norm of the channel group's weights."""

    L1 = "l1"
    L2 = "l2"


class Scope(str, enum.Enum):
    """Unstructured pruning threshold: one over all layers, or one per layer."""

    GLOBAL = "global"
    LAYER = "layer"


class SparsityWarning(UserWarning):
    """Unstructured sparsity that buys nothing on a dense runtime."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StructuredPruneConfig:
    """Remove ``ratio`` of the output channels of every conv/linear layer except the classifier head.

    ``ignore`` lists module names (as in ``named_modules``) to leave whole; the last ``Linear`` is always
    kept. ``round_to`` keeps channel counts multiples of that number (SIMD-friendly).
    """

    ratio: float = 0.5
    importance: Importance = Importance.L2
    global_pruning: bool = False
    ignore: tuple[str, ...] = ()
    round_to: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "importance", as_enum(Importance, self.importance, "importance"))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"ratio={self.ratio} must be in (0, 1): the fraction of channels to remove")
        if self.round_to is not None and self.round_to < 1:
            raise ConfigError(f"round_to={self.round_to} must be >= 1")


@dataclasses.dataclass(frozen=True)
class LayerChannels:
    layer: str
    kind: str
    before: int
    after: int


@dataclasses.dataclass(frozen=True)
class LayerParams:
    """A module that owns parameters, with its type and parameter count."""

    layer: str
    kind: str
    params: int


def layer_params(model: Any) -> dict[str, LayerParams]:
    """Every module that owns parameters directly: name -> (type name, parameter count)."""
    out = {}
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own:
            out[name] = LayerParams(name, type(m).__name__, int(own))
    return out


def unprunable_layers(model: Any) -> list[LayerParams]:
    """Modules with weights that the unstructured masks never touch (anything but Conv/Linear and norms)."""
    import torch.nn as nn

    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    mods = dict(model.named_modules())
    return [lp for name, lp in layer_params(model).items()
            if not isinstance(mods[name], (nn.Conv2d, nn.Conv1d, nn.Linear) + norms)]


@dataclasses.dataclass(frozen=True)
class PruningPlan:
    """Channels per layer before and after structured pruning, and the parameter/MAC totals."""

    layers: tuple[LayerChannels, ...]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    untouched: tuple["LayerParams", ...] = ()  # layers with parameters that pruning did not shrink

    @property
    def removed_nothing(self) -> bool:
        return self.params_after >= self.params_before

    def untouched_summary(self) -> str:
        """``rnn (GRU, 14,208 params = 95.6%)``, largest first."""
        return ", ".join(
            f"{l.layer} ({l.kind}, {l.params:,} params = {l.params / self.params_before:.1%})"
            for l in sorted(self.untouched, key=lambda l: -l.params)
        )

    @property
    def channels_removed(self) -> float:
        before = sum(l.before for l in self.layers)
        return 1.0 - sum(l.after for l in self.layers) / before if before else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [dataclasses.asdict(l) for l in self.layers],
            "channels_removed": self.channels_removed,
            "params": {"before": self.params_before, "after": self.params_after},
            "macs": {"before": self.macs_before, "after": self.macs_after},
            "untouched": [dataclasses.asdict(l) for l in self.untouched],
        }

    def summary(self) -> str:
        rows = [f"{l.layer:<24} {l.kind:<7} {l.before:>5} -> {l.after:<5}" for l in self.layers]
        rows.append(
            f"channels removed: {self.channels_removed:.1%}; params {self.params_before:,} -> {self.params_after:,}; "
            f"MACs {self.macs_before:,} -> {self.macs_after:,}"
        )
        if self.untouched:
            rows.append(f"not pruned: {self.untouched_summary()}")
        return "\n".join(rows)


def _prunable(model: Any) -> list[tuple[str, Any]]:
    import torch.nn as nn

    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))]


def _channels(model: Any) -> dict[str, tuple[str, int]]:
    import torch.nn as nn

    out = {}
    for n, m in _prunable(model):
        out[n] = ("conv", m.out_channels) if isinstance(m, (nn.Conv2d, nn.Conv1d)) else ("linear", m.out_features)
    return out


def _macs_params(model: Any, example: Any) -> tuple[int, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def _apply(model: Any, example: Any, config: StructuredPruneConfig) -> Any:
    import torch.nn as nn
    import torch_pruning as tp

    layers = _prunable(model)
    names = {n for n, _ in layers}
    unknown = [n for n in config.ignore if n not in names]
    if unknown:
        raise ConfigError(f"ignore names {unknown} are not conv/linear modules of the model; choose from {sorted(names)}")
    last_linear = [m for _, m in layers if isinstance(m, nn.Linear)][-1:]
    ignored = last_linear + [m for n, m in layers if n in config.ignore]
    imp = tp.importance.GroupMagnitudeImportance(p=1 if config.importance is Importance.L1 else 2)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=imp,
        pruning_ratio=config.ratio,
        global_pruning=config.global_pruning,
        ignored_layers=ignored,
        round_to=config.round_to,
    )
    pruner.step()
    return model


def _example(sample: Any) -> Any:
    import torch

    x = np.asarray(sample, dtype=np.float32)
    return torch.as_tensor(x[:1])


def plan_structured(model: Any, sample: Any, config: StructuredPruneConfig | None = None) -> PruningPlan:
    """What ``prune_structured`` would do, computed on a copy; ``model`` is not touched."""
    return prune_structured(copy.deepcopy(model), sample, config)[1]


def prune_structured(model: Any, sample: Any, config: StructuredPruneConfig | None = None) -> tuple[Any, PruningPlan]:
    """Remove channels in place with torch-pruning; returns the (smaller) model and its ``PruningPlan``.

    Fine-tune afterwards (``train.fit`` or ``distill.distill``) to recover accuracy.
    """
    config = config or StructuredPruneConfig()
    model = model.cpu().eval()
    example = _example(sample)
    before = _channels(model)
    owned = layer_params(model)
    macs0, params0 = _macs_params(model, example)
    _apply(model, example, config)
    after = _channels(model)
    owned_after = layer_params(model)
    macs1, params1 = _macs_params(model, example)
    untouched = tuple(lp for n, lp in owned.items() if n in owned_after and owned_after[n].params >= lp.params)
    layers = tuple(
        LayerChannels(n, kind, c, after.get(n, ("", 0))[1]) for n, (kind, c) in before.items() if n in after
    )
    last = list(before)[-1]
    layers = tuple(l for l in layers if l.layer != last)  # the head keeps its classes
    return model, PruningPlan(layers, params0, params1, macs0, macs1, untouched)


# --------------------------------------------------------------------------- unstructured


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnstructuredPruneConfig:
    """Zero the ``amount`` smallest-magnitude weights of conv/linear layers.

    ``scope`` global ranks all weights together, ``layer`` prunes each layer by ``amount``.
    ``gradual`` ramps sparsity from 0 to ``amount`` on a cubic schedule (Zhu & Gupta 2017) over
    fine-tuning steps, re-pruning every ``every`` steps; otherwise it is applied at once.
    """

    amount: float = 0.5
    scope: Scope = Scope.GLOBAL
    gradual: bool = True
    every: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", as_enum(Scope, self.scope, "scope"))
        if not 0.0 < self.amount < 1.0:
            raise ConfigError(f"amount={self.amount} must be in (0, 1): the fraction of weights to zero")
        if self.every < 1:
            raise ConfigError(f"every={self.every} must be >= 1")


def _weights(model: Any) -> list[tuple[Any, str]]:
    return [(m, "weight") for _, m in _prunable(model)]


def _prune_to(model: Any, amount: float, scope: Scope) -> None:
    import torch.nn.utils.prune as tprune

    if amount <= 0:
        return
    params = _weights(model)
    # re-derive the mask from the current (masked) weights: remove old masks, prune again to the new amount
    for m, name in params:
        if tprune.is_pruned(m):
            tprune.remove(m, name)
    if scope is Scope.GLOBAL:
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    else:
        for m, name in params:
            tprune.l1_unstructured(m, name, amount=amount)


def _finalize(model: Any) -> None:
    import torch.nn.utils.prune as tprune

    for m, name in _weights(model):
        if tprune.is_pruned(m):
            tprune.remove(m, name)


class GradualPruner:
    """``after_step`` hook for ``train.fit``: raises sparsity on the cubic schedule, then re-masks."""

    def __init__(self, model: Any, config: UnstructuredPruneConfig) -> None:
        self.model = model
        self.config = config

    def target(self, step: int, total: int) -> float:
        t = min(1.0, step / max(1, int(total * 0.8)))  # reach the final sparsity at 80% of training
        return self.config.amount * (1.0 - (1.0 - t) ** 3)

    def __call__(self, step: int, total: int) -> None:
        if step % self.config.every == 0 or step == total:
            _prune_to(self.model, self.target(step, total), self.config.scope)


def sparsity(model: Any) -> float:
    """Fraction of exactly-zero weights over conv/linear layers."""
    zeros = total = 0
    for m, _ in _weights(model):
        w = m.weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total if total else 0.0


def prune_unstructured(
    model: Any,
    config: UnstructuredPruneConfig | None = None,
    *,
    fine_tune: Callable[[Any, Callable[[int, int], None] | None], Any] | None = None,
) -> Any:
    """Magnitude-prune ``model`` in place; returns it with masks baked into the weights.

    ``fine_tune(model, after_step)`` trains the model (e.g. ``lambda m, hook: fit(m, x, y, cfg, after_step=hook)``);
    with ``gradual`` the hook raises sparsity during it, otherwise pruning happens once before it.
    Warns with ``SparsityWarning``: dense runtimes gain no speed or raw size from zeros.
    """
    config = config or UnstructuredPruneConfig()
    if config.gradual and fine_tune is not None:
        hook = GradualPruner(model, config)
        model = fine_tune(model, hook) or model
        _prune_to(model, config.amount, config.scope)
    else:
        _prune_to(model, config.amount, config.scope)
        if fine_tune is not None:  # keep the masks during fine-tuning so zeros stay zero
            model = fine_tune(model, None) or model
    _finalize(model)
    warnings.warn(
        f"unstructured sparsity {sparsity(model):.0%} does not make ONNX Runtime or LiteRT faster and does not "
        "shrink the raw exported file (zeros are stored densely); it only helps after compression. "
        "Use structured pruning for speed.",
        SparsityWarning,
        stacklevel=2,
    )
    return model


# --------------------------------------------------------------------------- what the runtime gains


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """What a model costs on the runtime: params, MACs, exported ONNX size raw and zlib-compressed, latency."""

    params: int
    macs: int
    onnx_bytes: int
    onnx_zlib_bytes: int
    latency: Latency

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["latency"] = self.latency.to_dict()
        return d


def measure(model: Any, sample: Any, *, runs: int = 300) -> tuple[ModelStats, bytes]:
    """Export ``model`` to ONNX and measure it (ORT, 1 thread, batch 1); returns stats and the ONNX bytes."""
    from .export import ExportConfig, export_onnx
    from .latency import timed_call

    x = np.asarray(sample, dtype=np.float32)
    result = export_onnx(model, x, ExportConfig(check_samples=min(len(x), 64)))
    macs, params = _macs_params(model.cpu().eval(), _example(x))
    lat = measure_latency(timed_call(result.model, x[:1]), runs=runs, warmup=30)
    stats = ModelStats(params, macs, len(result.model), len(zlib.compress(result.model, 9)), lat)
    return stats, result.model
