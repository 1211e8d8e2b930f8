"""``adb://SERIAL``: an Android device with Python available to ``adb shell`` (e.g. Termux).

UNVERIFIED: no Android device was available while this was written. Everything up to
the ``adb`` invocations is tested (against a fake ``adb`` and the real one for its
errors); the commands themselves follow the documented ``adb push`` / ``adb shell`` /
``adb exec-out`` behaviour (shell exit codes need adb's shell protocol v2, Android 7+).

Query options: ``?python=/data/data/com.termux/files/usr/bin/python`` (default
``python3``), ``adb=PATH`` (default ``adb`` on PATH, or ``$ADB``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

from edgeseal.runtime.errors import ConfigError

from .base import CommandResult, DeviceError, Transport

WORK_ROOT = "/data/local/tmp"


class ADBTransport(Transport):
    scheme = "adb"

    def __init__(self, url: str, *, adb: str | None = None, python: str | None = None) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme != "adb" or not parts.netloc:
            raise ConfigError(f"device URL {url!r} is not adb://SERIAL (see `adb devices` for serials)")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.serial = parts.netloc
        self.adb = adb or query.get("adb") or os.environ.get("ADB") or "adb"
        self.python = [python or query.get("python") or "python3"]

    def _adb(self, *args: str, timeout: float = 120.0) -> CommandResult:
        argv = [self.adb, "-s", self.serial, *args]
        if shutil.which(self.adb) is None and not Path(self.adb).is_file():
            raise DeviceError("adb is not installed here (apt-get install adb, or the Android platform-tools)",
                              reason="no adb")
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.url}: adb did not finish within {timeout:.0f} s", reason="timeout") from None
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def open(self) -> None:
        state = self._adb("get-state", timeout=30)
        if state.returncode != 0 or state.text.strip() != "device":
            lines = (state.stderr.decode(errors="replace").strip() or state.text.strip()).splitlines()
            err = (lines[-1] if lines else f"exit {state.returncode}")[:200]  # not the "* daemon started" lines
            if "unauthorized" in err:
                raise DeviceError(f"{self.url}: the device has not authorized this computer; accept the USB "
                                  "debugging prompt on the phone", reason="auth")
            raise DeviceError(f"{self.url}: unreachable: adb has no device {self.serial!r} ({err}); "
                              "check `adb devices`", reason="unreachable")
        made = self._adb("shell", f"mktemp -d {WORK_ROOT}/edgeseal-verify.XXXXXXXX")
        path = made.text.strip()
        if made.returncode != 0 or not path.startswith(f"{WORK_ROOT}/edgeseal-verify."):
            raise DeviceError(f"{self.url}: cannot create a work dir under {WORK_ROOT}", reason="workdir")
        self.workdir = path

    def push(self, local: Path, name: str | None = None) -> str:
        dest = self.remote_path(name or Path(local).name)
        result = self._adb("push", str(local), dest)
        if result.returncode != 0:
            raise DeviceError(f"{self.url}: adb push to {dest} failed: {result.stderr.decode(errors='replace')[:200]}",
                              reason="push")
        return dest

    def run(self, argv: Sequence[str], *, timeout: float = 600.0) -> CommandResult:
        return self._adb("shell", f"cd {self.quote([self.workdir or WORK_ROOT])} && {self.quote(argv)}",
                         timeout=timeout)

    def fetch(self, remote: str) -> bytes:
        result = self._adb("exec-out", f"cat {self.quote([remote])}")
        if result.returncode != 0:
            raise DeviceError(f"{self.url}: cannot read {remote} on the device", reason="fetch")
        return result.stdout

    def close(self) -> None:
        if self.workdir is not None:
            workdir, self.workdir = self.workdir, None
            try:
                self._adb("shell", f"rm -rf {self.quote([workdir])}")
            except DeviceError:
                pass
