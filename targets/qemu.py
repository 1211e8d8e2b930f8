"""Emulated aarch64 devices: a Debian arm64 root run through qemu-user-static and binfmt_misc.

``build_device("qemu-rpi")`` (CLI: ``edgeseal device create qemu-rpi``) builds it once:

1. ``debootstrap --arch=arm64`` a minimal Debian bookworm root with python3 (Python 3.11,
   the Python of Raspberry Pi OS bookworm);
2. download the real aarch64 wheels of numpy, cryptography, onnxruntime and ai-edge-litert on
   the host (``pip download --platform manylinux..._aarch64``): pip inside the root cannot
   reach the registry (no usable certificates under emulation);
3. create ``/opt/edgeseal`` (a venv) in the root and install those wheels offline, then the
   edgeseal wheel built from this checkout.

ARM int8 kernels (MLAS NEON, XNNPACK) then run for real, instruction by instruction, under
QEMU's TCG. Needs root (chroot, mount) and the Debian packages
``qemu-user-static debootstrap binfmt-support``. Everything lives under
``$EDGESEAL_CACHE_DIR/devices/<name>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgeseal.runtime.errors import ConfigError, DeviceError, UnsupportedError

from .cache import cache_dir
from .profile import get_profile
from .runtime_env import build_wheel, checkout_root, requirement_name, runtime_requirements, source_digest

__all__ = ["DEVICES", "QemuDevice", "device_dir", "build_device", "device_status", "ensure_binfmt",
           "install_edgeseal", "remove_device"]

APT_LINE = "apt-get install -y qemu-user-static debootstrap binfmt-support"
MIRROR = os.environ.get("EDGESEAL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
VENV = "/opt/edgeseal"
_AARCH64_MAGIC = (r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
                  r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff")


@dataclass(frozen=True, kw_only=True)
class QemuDevice:
    """An emulated device: a Debian suite and architecture, and the target profile it stands for."""

    name: str
    profile: str
    arch: str = "arm64"
    suite: str = "bookworm"
    qemu: str = "qemu-aarch64-static"
    # The CPU QEMU emulates (QEMU_CPU). The Pi 4's own Cortex-A72 (ARMv8.0: no dot product, no
    # I8MM, no SVE), so the runtime picks the kernels it would pick on a real Pi 4; QEMU's
    # default "max" CPU advertises every extension and sends MLAS down other code paths.
    cpu: str = "cortex-a72"
    python: str = "3.11"
    # onnxruntime 1.28-1.32 aarch64 wheels die with SIGSEGV at import under Debian 12's
    # qemu-user 7.2 (measured; 1.20.1, 1.23.2 and 1.27.0 import and run), so the emulated
    # device pins the newest release that runs there. A real Pi is not affected.
    pins: tuple[str, ...] = ("onnxruntime==1.27.0",)
    # Another device whose root this one runs in, with its own CPU: the Pi 5 needs the same Debian
    # and wheels as the Pi 4, only a different emulated CPU, so it shares the Pi 4's root.
    root: str | None = None

    def requirements(self) -> list[str]:
        pinned = {requirement_name(p) for p in self.pins}
        return [r for r in runtime_requirements() if requirement_name(r) not in pinned] + list(self.pins)


DEVICES = {
    "qemu-rpi": QemuDevice(name="qemu-rpi", profile="rpi4"),
    # Cortex-A76 (ARMv8.2-A: dot product, AES, fp16): MLAS takes its SDOT int8 kernels, as on a Pi 5.
    "qemu-rpi5": QemuDevice(name="qemu-rpi5", profile="rpi5", cpu="cortex-a76", root="qemu-rpi"),
}


def _device(name: str) -> QemuDevice:
    try:
        return DEVICES[name]
    except KeyError:
        raise ConfigError(f"unknown emulated device {name!r}; available: {', '.join(DEVICES)}") from None


def device_dir(name: str) -> Path:
    dev = _device(name)
    return cache_dir("devices", dev.root or dev.name)


def rootfs(name: str) -> Path:
    return device_dir(name) / "rootfs"


def device_status(name: str) -> dict:
    """What is built for this device (read from its marker file); ``ready`` False when not built."""
    marker = device_dir(name) / "device.json"
    if not marker.is_file():
        return {"name": name, "ready": False, "path": str(device_dir(name))}
    info = json.loads(marker.read_text())
    dev = _device(name)
    info.update(ready=True, name=name, profile=dev.profile, cpu=dev.cpu)
    if dev.root:
        info["root_of"] = dev.root
    return info


def _require_tools(dev: QemuDevice) -> None:
    if os.geteuid() != 0:
        raise UnsupportedError(
            f"the emulated device {dev.name} needs root (debootstrap, chroot and mount); run as root, e.g. in a "
            "container or CI job", reason="not root",
        )
    missing = [tool for tool in ("debootstrap", dev.qemu, "chroot") if shutil.which(tool) is None]
    if missing:
        raise UnsupportedError(f"missing {', '.join(missing)}; install them with: {APT_LINE}", reason="tools missing")


def ensure_binfmt(dev: QemuDevice) -> None:
    """Mount binfmt_misc and register the static QEMU interpreter (fix-binary) if not done yet."""
    base = Path("/proc/sys/fs/binfmt_misc")
    if not (base / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(base)], capture_output=True)
    entry = base / "qemu-aarch64"
    if entry.exists():
        if entry.read_text().startswith("enabled"):
            return
        entry.write_text("1")
        return
    if shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not entry.exists() and (base / "register").exists():
        qemu = shutil.which(dev.qemu)
        line = f":qemu-aarch64:M::{_AARCH64_MAGIC[0]}:{_AARCH64_MAGIC[1]}:{qemu}:F"
        try:
            (base / "register").write_bytes(line.encode().decode("unicode_escape").encode("latin-1"))
        except OSError:
            pass
    if not entry.exists():
        raise UnsupportedError(
            "cannot register qemu-aarch64 with binfmt_misc (is /proc/sys/fs/binfmt_misc mountable here? "
            f"a container may need --privileged); {APT_LINE}", reason="binfmt",
        )


def _stream(argv: list[str], what: str, status: Callable[[str], None], **kw) -> None:
    """Run a build step, feeding its output lines to ``status``; raise with the tail on failure."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = (tail + [line])[-12:]
            status(line[:120])
    if proc.wait() != 0:
        raise UnsupportedError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail), reason=what)


def _chroot(root: Path, *argv: str, cpu: str | None = None) -> list[str]:
    """chroot + a clean environment; QEMU_CPU must be in it: every exec starts a fresh qemu."""
    env = [f"QEMU_CPU={cpu}"] if cpu else []
    return ["env", *env, "chroot", str(root), "/usr/bin/env", "-i", *env, "PATH=/usr/local/bin:/usr/bin:/bin",
            "HOME=/root", "LANG=C.UTF-8", *argv]


def download_wheels(dev: QemuDevice, dest: Path, status: Callable[[str], None]) -> list[str]:
    """The aarch64 wheels of the runtime's dependencies, downloaded on the host."""
    profile = get_profile(dev.profile)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest),
            "--only-binary=:all:", "--python-version", dev.python, "--implementation", "cp",
            "--abi", f"cp{dev.python.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
    for platform in profile.wheel_platforms:
        argv += ["--platform", platform]
    _stream(argv + dev.requirements(), "downloading aarch64 wheels", status)
    return sorted(p.name for p in dest.glob("*.whl"))


def install_edgeseal(name: str, status: Callable[[str], None] = lambda s: None) -> str:
    """(Re)install the edgeseal wheel of this checkout into the device root when its sources changed."""
    root = rootfs(name)
    stamp_file = root / VENV.lstrip("/") / ".edgeseal-stamp"
    checkout = checkout_root()
    if checkout is None:
        raise UnsupportedError("no edgeseal source checkout to install into the emulated device", reason="no checkout")
    stamp = source_digest(checkout)
    deps_ok = root / VENV.lstrip("/") / ".deps-ok"
    if deps_ok.is_file():  # a device built before edgeseal gained a runtime dependency lacks its wheel
        have = {requirement_name(wheel.split("-")[0]) for wheel in deps_ok.read_text().split()}  # name-version-...whl
        missing = sorted(requirement_name(r) for r in _device(name).requirements()
                         if requirement_name(r) not in have)
        if missing:
            raise DeviceError(f"{name}'s runtime lacks {', '.join(missing)}, which this edgeseal needs; update the "
                              f"device with `edgeseal device create {name}` (it keeps the Debian root)")
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return stamp
    wheel = build_wheel()
    inbox = root / "tmp" / "edgeseal-wheel"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    shutil.copy2(wheel, inbox / wheel.name)
    try:
        status(f"installing {wheel.name} into {name}")
        _stream(_chroot(root, f"{VENV}/bin/pip", "install", "--disable-pip-version-check", "--no-index",
                        "--no-deps", "--force-reinstall", f"/tmp/edgeseal-wheel/{wheel.name}"),
                "installing edgeseal in the emulated device", status)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
    stamp_file.write_text(stamp + "\n")
    return stamp


def build_device(name: str, *, status: Callable[[str], None] = lambda s: None,
                 step: Callable[[str, int, int], None] = lambda s, i, n: None, rebuild: bool = False) -> dict:
    """Build (or finish building) the emulated device; returns its status dict. Idempotent."""
    dev = _device(name)
    if dev.root:  # a CPU variant: build the device whose root it shares
        build_device(dev.root, status=status, step=step, rebuild=rebuild)
        return device_status(name)
    _require_tools(dev)
    ensure_binfmt(dev)
    base = device_dir(name)
    root = base / "rootfs"
    if rebuild:
        remove_device(name)
        base = device_dir(name)
    timings: dict[str, float] = {}
    steps = ["debootstrap", "wheels", "venv", "edgeseal"]

    t = time.perf_counter()
    step("debootstrap an arm64 Debian root (minutes under emulation)", 1, len(steps))
    if not (base / ".debootstrap-done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        _stream(["debootstrap", f"--arch={dev.arch}", "--variant=minbase",
                 "--include=python3,python3-venv,ca-certificates", dev.suite, str(root), MIRROR],
                "debootstrap", status)
        (base / ".debootstrap-done").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    timings["debootstrap"] = time.perf_counter() - t

    t = time.perf_counter()
    step("download aarch64 wheels on the host", 2, len(steps))
    wheels_dir = base / "wheels"
    shutil.rmtree(wheels_dir, ignore_errors=True)  # only the wheels of this build, no stale versions
    wheels_dir.mkdir()
    wheels = download_wheels(dev, wheels_dir, status)
    timings["wheels"] = time.perf_counter() - t

    t = time.perf_counter()
    step("create /opt/edgeseal and install the wheels offline", 3, len(steps))
    venv_dir = root / VENV.lstrip("/")
    deps_ok = venv_dir / ".deps-ok"
    if not deps_ok.is_file() or deps_ok.read_text().split() != wheels:
        shutil.rmtree(venv_dir, ignore_errors=True)
        inbox = root / "tmp" / "wheels"
        shutil.rmtree(inbox, ignore_errors=True)
        shutil.copytree(wheels_dir, inbox)
        try:
            _stream(_chroot(root, "python3", "-m", "venv", VENV), "creating the venv in the root", status)
            _stream(_chroot(root, f"{VENV}/bin/pip", "install", "--disable-pip-version-check", "--no-index",
                            "--find-links", "/tmp/wheels", *dev.requirements()),
                    "installing the aarch64 wheels", status)
        finally:
            shutil.rmtree(inbox, ignore_errors=True)
        deps_ok.write_text("\n".join(wheels) + "\n")
    timings["venv"] = time.perf_counter() - t

    t = time.perf_counter()
    step("install edgeseal from this checkout", 4, len(steps))
    stamp = install_edgeseal(name, status)
    timings["edgeseal"] = time.perf_counter() - t

    info = {"name": name, "profile": dev.profile, "arch": dev.arch, "suite": dev.suite, "python": dev.python,
            "path": str(base), "wheels": wheels, "edgeseal": stamp,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": {k: round(v, 1) for k, v in timings.items()}}
    (base / "device.json").write_text(json.dumps(info, indent=2) + "\n")
    return device_status(name)


def remove_device(name: str) -> None:
    """Delete the emulated device (refuses while /proc or /sys are mounted inside it)."""
    if _device(name).root:
        raise ConfigError(f"{name} runs in the root of {_device(name).root}; remove that one to remove both")
    root = rootfs(name)
    mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    if str(root) in mounts:
        raise ConfigError(f"{name} is in use ({root} has mounts); wait for the running verification to end")
    shutil.rmtree(device_dir(name), ignore_errors=True)
