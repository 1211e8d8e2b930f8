"""Device transports, one module each with the same shape (see :class:`Transport`).

========================  ==================================================================
``local``                 a separate process in a cached runtime-only venv (the default)
``ssh://user@host:port``  a real device over OpenSSH (``?python=``, ``?identity=``, ``?known_hosts=``)
``qemu://qemu-rpi``        an emulated Raspberry Pi 4 (``edgeseal device create qemu-rpi``); ``qemu`` and
                          the bare name ``qemu-rpi`` mean the same
``qemu://qemu-rpi5``       an emulated Raspberry Pi 5 (Cortex-A76) in the same root; also ``qemu-rpi5``
``adb://SERIAL``          an Android device with Python (unverified: no device here)
========================  ==================================================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from edgeseal.runtime.errors import ConfigError

from .base import CommandResult, DeviceError, Transport

__all__ = ["CommandResult", "DeviceError", "Transport", "open_transport", "canonical_device", "preflight", "SCHEMES"]

SCHEMES = ("local", "ssh", "qemu", "adb")


def canonical_device(url: str) -> str:
    """One spelling per device: a bare emulated-device name (``qemu-rpi5``) or ``qemu`` becomes ``qemu://NAME``."""
    from ..qemu import DEVICES

    if url == "qemu":
        return "qemu://qemu-rpi"
    if url in DEVICES:
        return f"qemu://{url}"
    return url


def preflight(url: str) -> None:
    """Cheap checks that a device can be used at all, before any work is spent on it (``DeviceError``)."""
    import shutil

    url = canonical_device(url)
    scheme = urlsplit(url).scheme or url.split("?")[0]
    if scheme == "qemu":
        from .. import qemu

        name = urlsplit(url).netloc or "qemu-rpi"
        if name not in qemu.DEVICES:
            raise ConfigError(f"unknown emulated device {name!r} in {url!r}; available: "
                              + ", ".join(f"qemu://{n}" for n in qemu.DEVICES))
        if not qemu.device_status(name)["ready"]:
            raise DeviceError(
                f"{url}: the emulated device {name} is not built yet; build it once with "
                f"`sudo \"$(command -v edgeseal)\" device create {name}` (a few minutes, needs root and: {qemu.APT_LINE})",
                reason="not built",
            )
    elif scheme in ("ssh", "adb"):
        if shutil.which(scheme) is None:
            raise DeviceError(f"{url}: the `{scheme}` command is not installed on this machine", reason="no client")
        if scheme == "ssh":
            import socket

            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or 22
            try:
                socket.create_connection((host, port), timeout=5).close()
            except OSError as exc:
                raise DeviceError(f"{url}: unreachable: nothing accepts connections at {host}:{port} ({exc.strerror or exc})",
                                  reason="unreachable") from None
    elif scheme != "local":
        open_transport(url)  # raises the ConfigError for an unknown device


def open_transport(url: str, **options: Any) -> Transport:
    """The transport for a device URL (not yet opened: use it as a context manager)."""
    url = canonical_device(url)
    scheme = urlsplit(url).scheme or url.split("?")[0]
    if scheme == "local":
        from .local import LocalTransport

        return LocalTransport(url, **options)
    if scheme == "ssh":
        from .ssh import SSHTransport

        return SSHTransport(url, **options)
    if scheme == "qemu":
        from .qemu import QemuTransport

        return QemuTransport(url, **options)
    if scheme == "adb":
        from .adb import ADBTransport

        return ADBTransport(url, **options)
    raise ConfigError(f"unknown device {url!r}; use one of: local, ssh://user@host[:port], qemu://qemu-rpi, "
                      "qemu://qemu-rpi5, adb://SERIAL")
