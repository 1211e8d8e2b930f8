"""The shape every transport has: open a work dir on the device, push files, run a command,
fetch a result, clean up. ``close`` removes everything that was pushed, also after a failure."""

from __future__ import annotations

import json
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeseal.runtime.errors import DeviceError

__all__ = ["DeviceError", "CommandResult", "Transport"]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def json(self) -> dict[str, Any] | None:
        """The JSON object the device runner printed, or None when stdout is not one."""
        text = self.text.strip()
        if not text.startswith("{"):
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None


class Transport(ABC):
    """One device connection. Use as a context manager: ``with open_transport(url) as dev: ...``."""

    scheme: str = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.workdir: str | None = None  # device-side path of the work dir, once open
        self.python: list[str] = ["python3"]

    # --- the five verbs -----------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Check the device answers and create a fresh private work dir on it."""

    @abstractmethod
    def push(self, local: Path, name: str | None = None) -> str:
        """Copy a local file into the work dir; return its device-side path."""

    @abstractmethod
    def run(self, argv: Sequence[str], *, timeout: float = 600.0) -> CommandResult:
        """Run a command in the work dir on the device."""

    @abstractmethod
    def fetch(self, remote: str) -> bytes:
        """Read a file from the device."""

    @abstractmethod
    def close(self) -> None:
        """Remove the work dir and everything pushed into it. Safe to call twice."""

    # --- shared helpers -------------------------------------------------------------------
    def __enter__(self) -> "Transport":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remote_path(self, name: str) -> str:
        if self.workdir is None:
            raise DeviceError(f"{self.url}: transport is not open", reason="not open")
        return f"{self.workdir}/{name}"

    def runtime_command(self, *args: str) -> list[str]:
        return [*self.python, "-m", "edgeseal.runtime", *args]

    def runtime_info(self) -> dict[str, Any]:
        """Ask the device's runtime who it is; DeviceError when it has no (working) edgeseal runtime."""
        result = self.run(self.runtime_command("info"), timeout=300)
        info = result.json()
        if result.returncode != 0 or not info or not info.get("ok"):
            err = (result.stderr.decode(errors="replace").strip().splitlines() or [""])[-1][:300]
            raise DeviceError(
                f"{self.url}: the device has no working edgeseal runtime ({' '.join(self.python)} "
                f"-m edgeseal.runtime failed: {err or 'no output'}); install it there with "
                "`pip install 'edgeseal[onnx]'` (or [tflite]), or point to its Python with ?python=PATH",
                reason="no runtime",
            )
        return info

    def describe(self) -> str:
        return self.url

    @staticmethod
    def quote(argv: Sequence[str]) -> str:
        return " ".join(shlex.quote(a) for a in argv)
