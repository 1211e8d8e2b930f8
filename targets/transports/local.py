"""``local``: the device is a separate process on this machine, in a runtime-only venv (no torch).

The embedded default of ``edgeseal verify``: it proves the sealed model runs with the
runtime alone. ``local?python=/path/to/python`` uses another interpreter instead of the
cached environment (it must have edgeseal's runtime installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

from ..runtime_env import clean_env, ensure_runtime_env
from .base import CommandResult, DeviceError, Transport


class LocalTransport(Transport):
    scheme = "local"

    def __init__(self, url: str = "local", *, python: str | None = None, status=lambda s: None) -> None:
        super().__init__(url)
        query = parse_qs(urlsplit(url).query) if "?" in url else {}
        self._python = python or (query.get("python") or [None])[0]
        self._status = status

    def open(self) -> None:
        python = self._python or str(ensure_runtime_env(status=self._status))
        if not Path(python).exists() and shutil.which(python) is None:
            raise DeviceError(f"local: Python {python!r} does not exist", reason="no python")
        self.python = [python]
        self.workdir = tempfile.mkdtemp(prefix="edgeseal-verify-")

    def push(self, local: Path, name: str | None = None) -> str:
        dest = self.remote_path(name or Path(local).name)
        shutil.copyfile(local, dest)
        os.chmod(dest, 0o600)  # pushed files may be keys
        return dest

    def run(self, argv: Sequence[str], *, timeout: float = 600.0) -> CommandResult:
        try:
            proc = subprocess.run(list(argv), cwd=self.workdir, env=clean_env(), capture_output=True,
                                  timeout=timeout)
        except FileNotFoundError:
            raise DeviceError(f"local: cannot start {argv[0]!r}", reason="no python") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"local: command did not finish within {timeout:.0f} s", reason="timeout") from None
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def fetch(self, remote: str) -> bytes:
        try:
            return Path(remote).read_bytes()
        except OSError as exc:
            raise DeviceError(f"local: cannot read {remote}: {exc.strerror}", reason="fetch") from None

    def close(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
