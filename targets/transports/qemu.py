"""``qemu`` / ``qemu://qemu-rpi``: an emulated aarch64 device (see :mod:`edgeseal.targets.qemu`).

Commands run with ``chroot`` into the device root; binfmt_misc hands every aarch64
binary to ``qemu-aarch64-static``. /proc and /sys are bind-mounted for the run (the
ARM kernels read the CPU description there) and unmounted on close; a lock file
keeps two verifications from sharing (and unmounting) the same root at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from edgeseal.runtime.errors import EdgesealError

from .. import qemu
from .base import CommandResult, DeviceError, Transport


class QemuTransport(Transport):
    scheme = "qemu"

    def __init__(self, url: str = "qemu", *, status=lambda s: None) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        self.device = parts.netloc or "qemu-rpi"
        self._status = status
        self._root: Path | None = None
        self._mounted: list[Path] = []
        self._lock: int | None = None
        self.python = [f"{qemu.VENV}/bin/python"]

    def open(self) -> None:
        info = qemu.device_status(self.device)
        if not info["ready"]:
            raise DeviceError(
                f"{self.url}: the emulated device {self.device} is not built yet; build it once with "
                f"`edgeseal device create {self.device}` (a few minutes, needs root and: {qemu.APT_LINE})",
                reason="not built",
            )
        try:
            qemu._require_tools(qemu._device(self.device))
            qemu.ensure_binfmt(qemu._device(self.device))
            qemu.install_edgeseal(self.device, self._status)  # keep the device's edgeseal in step with ours
        except EdgesealError as exc:
            raise DeviceError(f"{self.url}: {exc}", reason=getattr(exc, "reason", "setup")) from None
        self._root = qemu.rootfs(self.device)
        self._lock = os.open(qemu.device_dir(self.device) / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            for name in ("proc", "sys"):
                target = self._root / name
                if not os.path.ismount(target):
                    subprocess.run(["mount", "--bind", f"/{name}", str(target)], check=True, capture_output=True)
                    self._mounted.append(target)
            host_dir = tempfile.mkdtemp(prefix="edgeseal-verify.", dir=self._root / "tmp")
        except (OSError, subprocess.CalledProcessError) as exc:
            self.close()
            raise DeviceError(f"{self.url}: cannot prepare the device root: {exc}", reason="mount") from None
        self.workdir = "/" + str(Path(host_dir).relative_to(self._root))

    def _host(self, remote: str) -> Path:
        assert self._root is not None
        return self._root / remote.lstrip("/")

    def push(self, local: Path, name: str | None = None) -> str:
        dest = self.remote_path(name or Path(local).name)
        shutil.copyfile(local, self._host(dest))
        os.chmod(self._host(dest), 0o600)  # pushed files may be keys
        return dest

    def run(self, argv: Sequence[str], *, timeout: float = 1800.0) -> CommandResult:
        if self._root is None:
            raise DeviceError(f"{self.url}: transport is not open", reason="not open")
        cmd = f"cd {self.quote([self.workdir or '/'])} && exec {self.quote(argv)}"
        full = qemu._chroot(self._root, "/bin/sh", "-c", cmd, cpu=qemu._device(self.device).cpu)
        try:
            proc = subprocess.run(full, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.url}: command did not finish within {timeout:.0f} s", reason="timeout") from None
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def fetch(self, remote: str) -> bytes:
        try:
            return self._host(remote).read_bytes()
        except OSError as exc:
            raise DeviceError(f"{self.url}: cannot read {remote}: {exc.strerror}", reason="fetch") from None

    def close(self) -> None:
        if self.workdir is not None and self._root is not None:
            shutil.rmtree(self._host(self.workdir), ignore_errors=True)
        self.workdir = None
        for target in reversed(self._mounted):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        self._mounted.clear()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
