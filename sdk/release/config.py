"""The release recipe of ``edgeseal build``: one TOML file, frozen dataclasses.

    [release]                  # ReleaseInfo
    name = "digits"
    version = 1
    out = "release"            # the release folder (relative to this file; --out overrides)

    [keys]                     # KeysSpec: the publisher key signs packages and reports
    dir = "keys"               # missing keys are created here (0600) unless create = false

    [model]                    # ReleaseModel: factory + trained weights, or factory + [model.train]
    factory = "edgeseal.converters.zoo:DigitsCNN"
    input_shape = [1, 8, 8]
    [model.train]              # TrainSpec: train the factory's model on [data] train
    epochs = 12

    [data]                     # ReleaseData: .npz files (x, y) or a Python callable returning the splits
    source = "edgeseal.converters.zoo:digits_splits"

    [budget]
    max_drop = 1.0             # accuracy points the released model may lose against the fp32 model
    min_robust_accuracy = 40.0 # optional: percent the compressed model keeps under PGD ...
    robust_epsilon = 0.1       # ... at this L-inf radius (eval data); checked before the package is sealed

    [compress.prune]           # [compress.*]: the tables of a compress recipe (prune, distill, dp, defensive_prune,
    ratio = 0.25               # adversarial, robustness, quantize, export)
    [compress.quantize]
    mode = "static"

    [[target]]                 # TargetEntry, one per target profile
    name = "rpi4"
    device = "qemu://qemu-rpi" # where the package is verified (local, ssh://, qemu://, adb://)

    [audit]                    # AuditSpec (optional): leakage / robustness of each released package
    epsilons = [0.0, 0.05, 0.1]
    [audit.gate]               # edgeseal.audit.GateConfig limits
    max_mia_auc_increase = 0.05

Data roles: ``train`` fine-tunes (and is the audit's member set), ``calibration`` calibrates
int8 (default: train), ``eval`` chooses (the accuracy budget of compression is checked on
it), ``test`` proves: it is what the devices are verified on and the audit's non-members
(default: eval).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeseal.runtime.errors import ConfigError

from ..audit.config import GateConfig
from ..compress.recipe import read_toml, recipe_from_dict
from ..config import build_config

__all__ = ["ReleaseInfo", "KeysSpec", "TrainSpec", "ReleaseModel", "ReleaseData", "Budget", "TargetEntry",
           "AuditSpec", "ReleaseConfig", "load_release", "release_from_dict"]

_COMPRESS_TABLES = ("prune", "distill", "dp", "defensive_prune", "adversarial", "robustness", "quantize", "export")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseInfo:
    name: str
    version: int = 1
    out: str = "release"
    expires_days: int | None = None  # packages refuse to load after this many days

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name.strip() != "" and "/" not in self.name,
               f"[release] name={self.name!r} must be a non-empty name without '/'")
        _check(isinstance(self.version, int) and self.version >= 0, f"[release] version={self.version!r} must be an integer >= 0")
        if self.expires_days is not None:
            _check(self.expires_days > 0, f"[release] expires_days={self.expires_days} must be > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeysSpec:
    dir: str = "keys"
    publisher: str | None = None  # the publisher's Ed25519 private key PEM; default DIR/publisher.pem
    create: bool = True  # create missing keys (publisher, and each target's verification device key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSpec:
    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"[model.train] epochs={self.epochs} must be >= 1")
        _check(self.lr > 0, f"[model.train] lr={self.lr} must be > 0")
        _check(self.batch_size >= 1, f"[model.train] batch_size={self.batch_size} must be >= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseModel:
    factory: str  # "package.module:callable" returning the nn.Module
    state_dict: str | None = None  # trained weights; without them [model.train] trains the model
    input_shape: tuple[int, ...] | None = None
    train: TrainSpec | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.factory, str) and ":" in self.factory,
               f"[model] factory={self.factory!r} must look like 'package.module:callable'")
        _check(self.state_dict is not None or self.train is not None,
               "[model] needs trained weights (state_dict = 'model.pt') or a [model.train] table to train it")
        _check(self.state_dict is None or self.train is None,
               "[model] gives both state_dict and [model.train]; keep one (weights to release, or training)")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseData:
    source: str | None = None  # "module:callable" -> {"train": (x, y), "eval": (x, y), "test": (x, y), "calibration": x}
    train: str | None = None  # .npz files with x_key / y_key arrays
    calibration: str | None = None
    eval: str | None = None
    test: str | None = None
    x_key: str | None = None  # None: edgeseal's layout (x + y; input / labels read too)
    y_key: str | None = None

    def __post_init__(self) -> None:
        files = (self.train, self.calibration, self.eval, self.test)
        _check(self.source is None or not any(files),
               "[data] gives both source and .npz files; use one of them")
        _check(self.source is not None or (self.train is not None and self.eval is not None),
               "[data] needs train and eval .npz files (or source = 'module:callable')")
        if self.source is not None:
            _check(":" in self.source, f"[data] source={self.source!r} must look like 'package.module:callable'")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    max_drop: float = 1.0  # accuracy points, released model vs fp32, on eval (compression) and test (devices)
    min_robust_accuracy: float | None = None  # percent the compressed model keeps under PGD at robust_epsilon (eval)
    robust_epsilon: float | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.max_drop, (int, float)) and 0 <= self.max_drop <= 100,
               f"[budget] max_drop={self.max_drop!r} must be accuracy points in [0, 100]")
        _check((self.min_robust_accuracy is None) == (self.robust_epsilon is None),
               "[budget] min_robust_accuracy and robust_epsilon go together (percent kept under PGD at that L-inf "
               "radius); give both or neither")
        if self.min_robust_accuracy is not None:
            _check(isinstance(self.min_robust_accuracy, (int, float)) and 0 <= self.min_robust_accuracy <= 100,
                   f"[budget] min_robust_accuracy={self.min_robust_accuracy!r} must be a percentage in [0, 100]")
            _check(isinstance(self.robust_epsilon, (int, float)) and self.robust_epsilon > 0,
                   f"[budget] robust_epsilon={self.robust_epsilon!r} must be > 0 (L-inf radius in input units)")

    def robust_fields(self) -> dict[str, float]:
        """The compress recipe's top-level robust requirement, when [budget] sets one."""
        if self.min_robust_accuracy is None:
            return {}
        return {"min_robust_accuracy": self.min_robust_accuracy, "robust_epsilon": self.robust_epsilon}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetEntry:
    name: str  # a target profile (edgeseal targets)
    device: str = "local"  # where it is verified
    seal_for: tuple[str, ...] = ()  # more device public keys (PEM files, globs allowed) the package opens for
    device_key: str | None = None  # the verifying device's private key; default KEYS_DIR/<name>-device.pem
    threads: int | None = None

    def __post_init__(self) -> None:
        from edgeseal.targets import get_profile

        get_profile(self.name)  # ConfigError naming the known targets
        object.__setattr__(self, "seal_for", tuple(self.seal_for))
        _check(isinstance(self.device, str) and self.device != "", f"[[target]] {self.name}: device must be a URL")
        from edgeseal.targets.transports import canonical_device

        object.__setattr__(self, "device", canonical_device(self.device))  # qemu-rpi5 == qemu://qemu-rpi5


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditSpec:
    """Black-box audit of each package against the fp32 model (edgeseal.audit.audit_artifacts)."""

    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1)
    lo: float | None = None
    hi: float | None = None
    examples: int = 100
    queries: int = 100
    radius: float = 0.1
    explanation_examples: int = 30
    seed: int = 0
    gate_epsilon_index: int = 1
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilons", tuple(float(e) for e in self.epsilons))
        _check(0 <= self.gate_epsilon_index < len(self.epsilons),
               f"[audit] gate_epsilon_index={self.gate_epsilon_index} must index epsilons ({len(self.epsilons)} values)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseConfig:
    release: ReleaseInfo
    model: ReleaseModel
    data: ReleaseData
    targets: tuple[TargetEntry, ...]
    keys: KeysSpec = dataclasses.field(default_factory=KeysSpec)
    budget: Budget = dataclasses.field(default_factory=Budget)
    compress: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # compress-recipe tables, checked
    audit: AuditSpec | None = None
    base_dir: Path = Path(".")

    def __post_init__(self) -> None:
        _check(len(self.targets) > 0, "the release names no targets; add [[target]] tables (name = 'rpi4', ...)")
        names = [t.name for t in self.targets]
        _check(len(set(names)) == len(names), f"a target is listed twice: {names}")
        unknown = sorted(set(self.compress) - set(_COMPRESS_TABLES))
        _check(not unknown, f"[compress] has unknown table(s) {unknown}; known: {list(_COMPRESS_TABLES)}")
        _check("format" not in dict(self.compress.get("export", {})),
               "[compress.export] format comes from each target's profile; remove it")
        recipe_from_dict({**dict(self.compress), **self.budget.robust_fields()})  # checked now, not halfway through a build

    def path(self, value: str | None) -> Path | None:
        """A path from the recipe, resolved against the recipe's folder."""
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()


def release_from_dict(data: Mapping[str, Any], *, base_dir: Path = Path(".")) -> ReleaseConfig:
    """Build a ``ReleaseConfig`` from parsed TOML."""
    known = {"release", "keys", "model", "data", "budget", "compress", "target", "audit"}
    unknown = sorted(set(data) - known)
    _check(not unknown, f"unknown table(s) {unknown} in the release recipe; known: {sorted(known)}")
    for required in ("release", "model", "data", "target"):
        _check(required in data, f"the release recipe needs a [{required}] table" if required != "target"
               else "the release recipe needs at least one [[target]] table")
    targets = data["target"]
    _check(isinstance(targets, list), "targets are an array of tables: write [[target]], not [target]")
    audit = None
    if "audit" in data:
        table = dict(data["audit"])
        gate = build_config(GateConfig, table.pop("gate", {}), "[audit.gate]")
        audit = dataclasses.replace(build_config(AuditSpec, table, "[audit]"), gate=gate)
    return ReleaseConfig(
        release=build_config(ReleaseInfo, data["release"], "[release]"),
        keys=build_config(KeysSpec, data.get("keys", {}), "[keys]"),
        model=build_config(ReleaseModel, data["model"], "[model]"),
        data=build_config(ReleaseData, data["data"], "[data]"),
        budget=build_config(Budget, data.get("budget", {}), "[budget]"),
        compress=dict(data.get("compress", {})),
        targets=tuple(build_config(TargetEntry, t, f"[[target]] #{i + 1}") for i, t in enumerate(targets)),
        audit=audit,
        base_dir=base_dir,
    )


def load_release(path: str | Path) -> ReleaseConfig:
    """Read a release recipe (TOML); relative paths in it are resolved against its folder."""
    path = Path(path)
    return release_from_dict(read_toml(path, "release recipe"), base_dir=path.resolve().parent)
