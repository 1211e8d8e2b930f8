"""Device transports, one module each with the same shape (see :class:`Transport`).

========================  ==================================================================
``local``                 a separate process in a cached runtime-only venv (the default)
``ssh://user@host:port``  a real device over OpenSSH (``?python=``, ``?identity=``, ``?known_hosts=``)
``qemu[://qemu-rpi]``     an emulated aarch64 Debian root (``edgeseal device create qemu-rpi``)
``adb://SERIAL``          an Android device with Python (unverified: no device here)
========================  ==================================================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from edgeseal.runtime.errors import ConfigError

from .base import CommandResult, DeviceError, Transport

__all__ = ["CommandResult", "DeviceError", "Transport", "open_transport", "SCHEMES"]

SCHEMES = ("local", "ssh", "qemu", "adb")


def open_transport(url: str, **options: Any) -> Transport:
    """The transport for a device URL (not yet opened: use it as a context manager)."""
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
    raise ConfigError(f"unknown device {url!r}; use one of: local, ssh://user@host[:port], qemu, adb://SERIAL")
