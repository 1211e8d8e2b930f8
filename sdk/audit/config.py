"""Audit configuration: frozen keyword-only dataclasses, a TOML recipe maps 1:1 onto them.

    [audit]
    datasets = ["breast_cancer", "digits"]
    seeds = [0, 1, 2]
    variants = ["int8", "pruned", "distilled", "dp-sgd", "pruned-advft"]

    [audit.compression]
    prune_amount = 0.8

    [audit.membership]
    reference_models = 16

    [audit.gate]
    max_mia_auc = 0.75                 # any artifact, any attack
    max_mia_auc_increase = 0.05        # artifact minus fp32, same attack
    min_robust_accuracy_ratio = 0.5    # artifact / fp32 robust accuracy at gate_epsilon

Every table is optional; a key the dataclass does not know is a ConfigError
(typos must not pass silently).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from edgeseal.runtime.errors import ConfigError

from ..config import config_to_dict  # re-exported

from .data import DatasetName
from .training import TrainConfig

__all__ = ["Variant", "MembershipConfig", "RobustnessConfig", "DisagreementConfig", "ExplanationConfig",
           "VariantConfig", "GateConfig", "AuditConfig", "load_recipe", "config_to_dict"]


class Variant(str, Enum):
    """Compressed (or mitigated) artifacts built from the fp32 target and audited next to it."""

    INT8 = "int8"  # ONNX static QDQ int8 (ORT quantization tool), sealed, run by edgeseal.runtime
    PRUNED = "pruned"  # unstructured L1 magnitude pruning + fine-tune, ONNX fp32, sealed
    DISTILLED = "distilled"  # smaller student trained on the fp32 teacher's logits, ONNX fp32, sealed
    DP_SGD = "dp-sgd"  # same architecture trained with Opacus DP-SGD, ONNX fp32, sealed
    PRUNED_ADVFT = "pruned-advft"  # pruned, then PGD adversarial fine-tuning (masks kept), sealed


def _enum_tuple(enum_type: type[Enum], values: Any, name: str) -> tuple:
    if isinstance(values, str):
        raise ConfigError(f"{name} must be a list, not the single string {values!r}")
    out = []
    for v in values:
        try:
            out.append(enum_type(v))
        except ValueError:
            choices = ", ".join(e.value for e in enum_type)
            raise ConfigError(f"{name}: unknown value {v!r}; choose from {choices}") from None
    return tuple(out)


def _floats(values: Any, name: str, lo: float = 0.0, hi: float = float("inf")) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of numbers, got {values!r}") from None
    if not out or any(not lo <= v <= hi for v in out):
        raise ConfigError(f"{name} must be a non-empty list of numbers in [{lo}, {hi}], got {list(out)}")
    return out


@dataclass(frozen=True, kw_only=True)
class MembershipConfig:
    reference_models: int = 16
    reference_seed: int = 1234

    def __post_init__(self) -> None:
        if self.reference_models < 2 or self.reference_models % 2:
            raise ConfigError(f"membership.reference_models must be even and >= 2, got {self.reference_models}")


@dataclass(frozen=True, kw_only=True)
class RobustnessConfig:
    """Perturbation budgets are L-infinity, in input units: standard deviations for the
    standardized breast_cancer features, pixel intensity (0..1) for digits."""

    epsilons: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: {
        "breast_cancer": (0.0, 0.1, 0.2, 0.3, 0.5), "digits": (0.0, 0.05, 0.1, 0.15, 0.2)})
    pgd_steps: int = 20
    pgd_step_ratio: float = 0.25  # step size = ratio * epsilon
    blackbox_queries: int = 200  # per example: ART square attack iterations on images, own random search on records
    examples: int = 200  # non-member examples attacked
    gate_epsilon_index: int = 2  # which epsilon the gate checks

    def __post_init__(self) -> None:
        eps = {}
        for k, v in dict(self.epsilons).items():
            eps[k] = _floats(v, f"robustness.epsilons.{k}")
        object.__setattr__(self, "epsilons", eps)
        if self.pgd_steps < 1 or self.blackbox_queries < 1 or self.examples < 1:
            raise ConfigError("robustness.pgd_steps, blackbox_queries and examples must be >= 1")
        if not 0 < self.pgd_step_ratio <= 1:
            raise ConfigError(f"robustness.pgd_step_ratio must be in (0, 1], got {self.pgd_step_ratio}")
        if any(self.gate_epsilon_index >= len(v) for v in eps.values()) or self.gate_epsilon_index < 0:
            raise ConfigError("robustness.gate_epsilon_index must index every epsilon list")

    def epsilons_for(self, dataset: str) -> tuple[float, ...]:
        if dataset not in self.epsilons:
            raise ConfigError(f"robustness.epsilons has no entry for dataset {dataset!r}; add one")
        return self.epsilons[dataset]


@dataclass(frozen=True, kw_only=True)
class DisagreementConfig:
    """Search, around each start point, for inputs where int8 and fp32 predict different classes."""

    examples: int = 200
    radius: Mapping[str, float] = field(default_factory=lambda: {"breast_cancer": 0.5, "digits": 0.1})
    queries: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", {k: _floats([v], f"disagreement.radius.{k}")[0]
                                            for k, v in dict(self.radius).items()})
        if self.examples < 1 or self.queries < 1:
            raise ConfigError("disagreement.examples and queries must be >= 1")


@dataclass(frozen=True, kw_only=True)
class ExplanationConfig:
    """Attribution drift fp32 vs each artifact: occlusion, LIME and SHAP over the same feature groups."""

    examples: int = 100
    patch: int = 2  # group (patch) side for images (digits 8x8 -> 2x2 patches); tabular: one feature per group
    methods: tuple[str, ...] = ("occlusion", "lime", "shap")
    lime_samples: int = 300  # model calls per input (random group masks, shared by fp32 and the artifact)
    shap_samples: int = 300  # KernelExplainer nsamples per input
    top_k: int = 5
    pictures: int = 3  # inputs whose attribution maps are kept in the JSON and drawn in the HTML

    def __post_init__(self) -> None:
        if self.examples < 2 or self.patch < 1:
            raise ConfigError("explanation.examples must be >= 2 and patch >= 1")
        object.__setattr__(self, "methods", tuple(str(m) for m in self.methods))
        known = ("occlusion", "lime", "shap")
        if not self.methods or any(m not in known for m in self.methods) or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"explanation.methods must be distinct names from {list(known)}, "
                              f"got {list(self.methods)}")
        if self.lime_samples < 10 or self.shap_samples < 10 or self.top_k < 1 or self.pictures < 0:
            raise ConfigError("explanation.lime_samples and shap_samples must be >= 10, top_k >= 1, pictures >= 0")


@dataclass(frozen=True, kw_only=True)
class VariantConfig:
    prune_amount: float = 0.8
    prune_finetune_epochs: int = 20
    student_hidden: tuple[int, ...] = (64,)
    distill_epochs: int = 150
    distill_temperature: float = 4.0
    distill_alpha: float = 0.7  # weight of the soft-target term (the rest is hard-label cross-entropy)
    dp_epsilon: float = 4.0
    dp_delta: float | None = None  # None: 1 / (10 * n_members)
    dp_epochs: int = 40
    dp_max_grad_norm: float = 1.0
    dp_lr: float = 1e-2
    adv_epochs: int = 20
    adv_epsilon_index: int = 2  # adversarial fine-tuning budget: this epsilon of the robustness grid
    calibration_samples: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "student_hidden", tuple(int(h) for h in self.student_hidden))
        if not 0 < self.prune_amount < 1:
            raise ConfigError(f"compression.prune_amount must be in (0, 1), got {self.prune_amount}")
        if self.dp_epsilon <= 0 or (self.dp_delta is not None and not 0 < self.dp_delta < 1):
            raise ConfigError("compression.dp_epsilon must be > 0 and dp_delta in (0, 1)")
        for name in ("prune_finetune_epochs", "distill_epochs", "dp_epochs", "adv_epochs", "calibration_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"compression.{name} must be >= 1")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError(f"compression.distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if self.distill_temperature <= 0 or self.dp_max_grad_norm <= 0 or self.dp_lr <= 0:
            raise ConfigError("compression.distill_temperature, dp_max_grad_norm and dp_lr must be > 0")


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """Limits; ``None`` switches a check off. An artifact over any limit fails the audit (exit 1)."""

    max_mia_auc: float | None = None
    max_mia_auc_increase: float | None = 0.05
    max_tpr_at_1pct_fpr: float | None = None
    min_robust_accuracy_ratio: float | None = None
    max_disagreement_rate: float | None = None
    min_explanation_spearman: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and not (isinstance(v, (int, float)) and -1.0 <= v <= 1.0):
                raise ConfigError(f"gate.{f.name} must be a number in [-1, 1] (or absent), got {v!r}")


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    datasets: tuple[DatasetName, ...] = (DatasetName.BREAST_CANCER, DatasetName.DIGITS)
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[Variant, ...] = tuple(Variant)
    member_fraction: float = 0.5
    # Records drawn (with pool_seed) into the attack pool; the target trains on member_fraction of
    # them. Small pools make the deliberately overfitted target leak clearly; a missing entry = all.
    pool_size: Mapping[str, int] = field(default_factory=lambda: {"breast_cancer": 250, "digits": 600})
    pool_seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    disagreement: DisagreementConfig = field(default_factory=DisagreementConfig)
    explanation: ExplanationConfig = field(default_factory=ExplanationConfig)
    variant_options: VariantConfig = field(default_factory=VariantConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    sealed: bool = True  # run every compressed artifact through edgeseal.runtime.load

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _enum_tuple(DatasetName, self.datasets, "datasets"))
        object.__setattr__(self, "variants", _enum_tuple(Variant, self.variants, "variants"))
        if not self.datasets:
            raise ConfigError("datasets must name at least one dataset")
        seeds = tuple(self.seeds)
        if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if not 0 < self.member_fraction < 1:
            raise ConfigError(f"member_fraction must be in (0, 1), got {self.member_fraction}")
        for d in self.datasets:
            self.robustness.epsilons_for(d.value)
        pool = {str(k): int(v) for k, v in dict(self.pool_size).items()}
        if any(v < 20 for v in pool.values()):
            raise ConfigError(f"pool_size entries must be >= 20 records, got {pool}")
        object.__setattr__(self, "pool_size", pool)
        if self.variant_options.adv_epsilon_index >= min(len(v) for v in self.robustness.epsilons.values()):
            raise ConfigError("compression.adv_epsilon_index must index every robustness epsilon list")


_SECTIONS = {  # [audit.<section>] -> (AuditConfig field, dataclass)
    "train": ("train", TrainConfig),
    "membership": ("membership", MembershipConfig),
    "robustness": ("robustness", RobustnessConfig),
    "disagreement": ("disagreement", DisagreementConfig),
    "explanation": ("explanation", ExplanationConfig),
    "compression": ("variant_options", VariantConfig),
    "gate": ("gate", GateConfig),
}
_TOP = ("datasets", "seeds", "variants", "member_fraction", "pool_size", "pool_seed", "sealed")


def config_from_mapping(data: Mapping[str, Any]) -> AuditConfig:
    """Build an :class:`AuditConfig` from the ``[audit]`` table of a recipe (already parsed)."""
    from ..config import build_config

    unknown = sorted(set(data) - set(_TOP) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"[audit] has unknown key(s) {unknown}; known: {sorted(set(_TOP) | set(_SECTIONS))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            name, cls = _SECTIONS[key]
            kwargs[name] = build_config(cls, value, f"[audit.{key}]")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    return AuditConfig(**kwargs)


def load_recipe(path: str | Path) -> AuditConfig:
    """Read the ``[audit]`` table of a TOML recipe file."""
    from edgeseal.targets import read_toml

    p = Path(path)
    data = read_toml(p, "recipe")
    if "audit" not in data:
        raise ConfigError(f"recipe {p} has no [audit] table")
    return config_from_mapping(data["audit"])


