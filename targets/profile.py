"""Target profiles: what a device runs, as data (one TOML file per target).

A profile names the runtime and model format, the int8 layout its kernels run
fast, the payload cipher, threads, a memory budget and the operator set the
runtime supports. Built-in profiles ship in ``edgeseal/targets/profiles``; users
add their own files in a directory named by ``EDGESEAL_TARGETS_PATH``
(``os.pathsep``-separated) or ``~/.config/edgeseal/targets``, or pass a path.
A user file with the name of a built-in profile replaces it.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from edgeseal.runtime.errors import ConfigError

import tomllib

__all__ = [
    "read_toml",
    "Runtime",
    "ModelFormat",
    "QuantFormat",
    "QuantScheme",
    "OpSet",
    "TargetProfile",
    "get_profile",
    "list_profiles",
    "load_profile_file",
    "search_path",
]

_HERE = Path(__file__).resolve().parent
BUILTIN_DIR = _HERE / "profiles"
OPSET_DIR = _HERE / "opsets"
_CIPHERS = ("aes-256-gcm", "chacha20-poly1305")


class Runtime(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"


class ModelFormat(str, Enum):
    ONNX = "onnx"
    TFLITE = "tflite"


class QuantFormat(str, Enum):
    QDQ = "qdq"  # ONNX QuantizeLinear/DequantizeLinear pairs around float ops
    QOPERATOR = "qoperator"  # ONNX QLinearConv/QLinearMatMul ...
    TFLITE_INT8 = "tflite-int8"  # TFLite full-integer quantization


def _enum(kind: type[Enum], value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
        raise ConfigError(f"{what} is {value!r}; choose one of {choices}") from None


@dataclass(frozen=True, kw_only=True)
class QuantScheme:
    """The int8 layout the target's kernels execute fast."""

    format: QuantFormat
    weights: str = "int8"
    weight_granularity: str = "per-channel"
    weight_symmetric: bool = True
    activations: str = "uint8"
    activation_symmetric: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", _enum(QuantFormat, self.format, "quantization.format"))
        if self.weights not in ("int8", "uint8"):
            raise ConfigError(f"quantization.weights is {self.weights!r}; choose 'int8' or 'uint8'")
        if self.activations not in ("int8", "uint8"):
            raise ConfigError(f"quantization.activations is {self.activations!r}; choose 'int8' or 'uint8'")
        if self.weight_granularity not in ("per-channel", "per-tensor"):
            raise ConfigError(
                f"quantization.weight_granularity is {self.weight_granularity!r}; "
                "choose 'per-channel' or 'per-tensor'"
            )
        for name in ("weight_symmetric", "activation_symmetric"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"quantization.{name} must be true or false")

    @property
    def per_channel(self) -> bool:
        return self.weight_granularity == "per-channel"


@dataclass(frozen=True, kw_only=True)
class OpSet:
    """Operators a runtime can execute, by domain (``ai.onnx``, ``com.microsoft``, ``tflite`` ...)."""

    name: str
    format: ModelFormat
    domains: dict[str, frozenset[str]]
    generated_from: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", _enum(ModelFormat, self.format, f"op set {self.name!r} format"))
        object.__setattr__(self, "domains", {d: frozenset(ops) for d, ops in self.domains.items()})

    def supports(self, domain: str, op: str) -> bool:
        return op in self.domains.get(domain, frozenset())

    def __len__(self) -> int:
        return sum(len(ops) for ops in self.domains.values())


@dataclass(frozen=True, kw_only=True)
class TargetProfile:
    """One device class. Build with :func:`get_profile`; every field comes from the TOML file."""

    name: str
    description: str
    arch: str
    os: str
    cpu: str
    runtime: Runtime
    format: ModelFormat
    opset: str
    cipher: str
    threads: int
    memory_budget_mb: int
    quantization: QuantScheme
    cpu_features: tuple[str, ...] = ()
    python: str = "3.11"
    wheel_platforms: tuple[str, ...] = ()
    emulator: str | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("name", "description", "arch", "os", "cpu", "opset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"target profile field {name!r} must be a non-empty string, got {value!r}")
        object.__setattr__(self, "runtime", _enum(Runtime, self.runtime, f"target {self.name!r} runtime"))
        object.__setattr__(self, "format", _enum(ModelFormat, self.format, f"target {self.name!r} format"))
        if (self.runtime is Runtime.LITERT) != (self.format is ModelFormat.TFLITE):
            raise ConfigError(
                f"target {self.name!r}: runtime {self.runtime.value!r} does not run format {self.format.value!r} "
                "(onnxruntime runs 'onnx', litert runs 'tflite')"
            )
        if self.cipher not in _CIPHERS:
            raise ConfigError(f"target {self.name!r}: cipher is {self.cipher!r}; choose one of {_CIPHERS}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ConfigError(f"target {self.name!r}: threads must be an integer >= 0 (0 = runtime default)")
        if not isinstance(self.memory_budget_mb, int) or self.memory_budget_mb <= 0:
            raise ConfigError(f"target {self.name!r}: memory_budget_mb must be a positive integer")
        if isinstance(self.quantization, dict):
            object.__setattr__(self, "quantization", QuantScheme(**self.quantization))
        if not isinstance(self.quantization, QuantScheme):
            raise ConfigError(f"target {self.name!r}: [quantization] table is missing")
        object.__setattr__(self, "cpu_features", tuple(self.cpu_features))
        object.__setattr__(self, "wheel_platforms", tuple(self.wheel_platforms))

    @property
    def has_aes(self) -> bool:
        return "aes" in self.cpu_features

    def ops(self) -> OpSet:
        """The operator set this target's runtime supports."""
        return load_opset(self.opset)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, QuantScheme):
                value = {k.name: getattr(value, k.name) for k in fields(value)}
                value["format"] = value["format"].value
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file: the one reader for every edgeseal file (recipes, release and search files,
    audit recipes, target profiles, op sets). A missing file or a syntax error is a ``ConfigError``
    naming ``what`` the file is and where TOML stopped reading."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}; check the path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def load_profile_file(path: str | Path) -> TargetProfile:
    """Load and validate one profile file."""
    path = Path(path)
    data = read_toml(path, "target profile")
    known = {f.name for f in fields(TargetProfile)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"target profile {path}: unknown field(s) {', '.join(unknown)}; known: {sorted(known)}")
    missing = sorted(
        f.name for f in fields(TargetProfile)
        if f.name in known and f.name not in data and f.default is MISSING and f.default_factory is MISSING
    )
    if missing:
        raise ConfigError(f"target profile {path}: missing field(s) {', '.join(missing)}")
    try:
        return TargetProfile(**data, source=str(path))
    except TypeError as exc:
        raise ConfigError(f"target profile {path}: {exc}") from None


def search_path() -> list[Path]:
    """Directories searched for profiles, highest priority first; the built-in directory is last."""
    dirs: list[Path] = []
    env = os.environ.get("EDGESEAL_TARGETS_PATH")
    if env:
        dirs.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser() / "edgeseal" / "targets")
    dirs.append(BUILTIN_DIR)
    return dirs


def list_profiles() -> list[TargetProfile]:
    """Every profile found on the search path (a user file shadows a built-in one of the same name)."""
    seen: dict[str, TargetProfile] = {}
    for directory in search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if path.stem not in seen:
                seen[path.stem] = load_profile_file(path)
    return sorted(seen.values(), key=lambda p: p.name)


def get_profile(target: str | Path | TargetProfile) -> TargetProfile:
    """A profile by name (``"rpi4"``), by file path, or passed through."""
    if isinstance(target, TargetProfile):
        return target
    text = str(target)
    if text.endswith(".toml") or os.sep in text:
        return load_profile_file(text)
    for directory in search_path():
        path = directory / f"{text}.toml"
        if path.is_file():
            return load_profile_file(path)
    names = ", ".join(p.name for p in list_profiles())
    raise ConfigError(f"unknown target {text!r}; known targets: {names} (or give a profile .toml path)")


_OPSETS: dict[str, OpSet] = {}


def load_opset(name: str) -> OpSet:
    """An operator set by name, from ``edgeseal/targets/opsets`` or the user profile directories."""
    if name in _OPSETS:
        return _OPSETS[name]
    for directory in [d.parent / "opsets" for d in search_path()[:-1]] + [OPSET_DIR]:
        path = directory / f"{name}.toml"
        if path.is_file():
            data = read_toml(path, "op set")
            opset = OpSet(
                name=data.get("name", name),
                format=data.get("format", ""),
                domains={d: list(ops) for d, ops in data.get("domains", {}).items()},
                generated_from=data.get("generated_from", ""),
            )
            _OPSETS[name] = opset
            return opset
    raise ConfigError(f"unknown op set {name!r}: no {name}.toml in {OPSET_DIR} or next to the user profile dirs")
