"""One config loader: a parsed TOML table to a frozen, validated dataclass, and back to plain values.

Recipes (:mod:`edgeseal.compress.recipe`), releases, searches, audits all build their dataclasses with
:func:`build_config`, so every file gets the same checks before any work starts; :func:`config_to_dict`
is the one way back to JSON-ready values (reports, stage-cache keys). TOML files themselves are read by
:func:`edgeseal.targets.read_toml`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .runtime.errors import ConfigError

__all__ = ["build_config", "config_to_dict"]


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass inside ``X`` or ``X | None``, else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def build_config(cls: type, table: Mapping[str, Any], where: str) -> Any:
    """A frozen config dataclass from a parsed TOML table: the one builder for recipes, releases, searches
    and audits. Unknown keys are refused naming the valid ones, nested tables become their dataclasses, TOML
    arrays become tuples, and the dataclass validates its values (``__post_init__``) before any work starts."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {key!r} in {where}; valid keys are: {', '.join(sorted(fields))}"
            )
        sub = _dataclass_type(hints[key])
        if sub is not None:
            kwargs[key] = build_config(sub, value, f"[{key}]")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # wrong value types surface here
        raise ConfigError(f"{where}: {exc}") from None


def config_to_dict(cfg: Any) -> Any:
    """JSON-ready form of any config dataclass (enums as their values)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Enum):
        return cfg.value
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (tuple, list)):
        return [config_to_dict(v) for v in cfg]
    return cfg
