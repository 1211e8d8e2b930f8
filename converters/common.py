"""Small shared helpers for the converters: device choice, seeding, progress bars.

Torch is imported inside functions so that importing ``edgeseal.converters``
stays cheap; every function here that needs torch imports it itself.
"""

from __future__ import annotations

import contextlib
import enum
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

__all__ = ["Device", "resolve_device", "seed_everything", "progress", "as_enum"]


class Device(str, enum.Enum):
    """Where training and calibration run. ``auto`` picks CUDA when present, CPU otherwise."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def as_enum(enum_type: type[enum.Enum], value: Any, field: str) -> Any:
    """Coerce ``value`` to ``enum_type`` or raise a ConfigError naming the field and the choices."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum_type)
        raise ConfigError(f"{field}={value!r} is not valid; choose one of {choices}") from None


def resolve_device(device: str | Device = "auto") -> Any:
    """Return a ``torch.device``: ``auto`` -> CUDA when available, else CPU.

    Asking for ``cuda`` on a machine without CUDA is a ConfigError, not a silent fallback.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    text = device.value if isinstance(device, Device) else str(device)
    choice = as_enum(Device, text.split(":")[0], "device")
    if choice is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was requested but no CUDA device is available; use device='auto' or 'cpu'")
    return torch.device(text)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run can be repeated."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def progress(description: str, total: int, *, enabled: bool = True) -> Iterator[Any]:
    """A counted task of edgeseal's one progress sink (:mod:`edgeseal.progress`); yields an object with
    ``advance(n=1)``. Off a terminal it writes timestamped lines; ``enabled=False`` (e.g. inside tests)
    writes nothing."""
    from edgeseal.progress import Progress

    with Progress(quiet=not enabled) as sink, sink.task(description, total) as task:
        yield task
