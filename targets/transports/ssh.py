"""``ssh://user@host[:port]``: a real device (a Raspberry Pi) over OpenSSH.

Uses the system ``ssh`` client in batch mode (no password prompts: keys or an agent),
so it honours ``~/.ssh/config``. Files travel over the same connection (``cat``), so
only ``sh``, ``mktemp``, ``cat`` and ``rm`` are needed on the device besides Python.

Query options: ``?python=/home/pi/venv/bin/python`` (default ``python3``),
``identity=PATH``, ``known_hosts=PATH``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from edgeseal.runtime.errors import ConfigError

from .base import CommandResult, DeviceError, Transport

_CONNECT_ERRORS = (
    ("Permission denied", "wrong credentials: the device refused the key for {who}; check the user name and "
                          "--identity (the key must be in the device's ~/.ssh/authorized_keys)", "auth"),
    ("Host key verification failed", "the device's host key is unknown or changed; add it to known_hosts "
                                     "(ssh-keyscan -p PORT HOST) after checking its fingerprint", "host key"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "the device's host key changed; check the device, then update "
                                               "known_hosts", "host key"),
    ("Connection refused", "unreachable: nothing accepts SSH connections at {where}; is sshd running and the "
                           "port right?", "unreachable"),
    ("Could not resolve hostname", "unreachable: host name {host!r} does not resolve", "unreachable"),
    ("No route to host", "unreachable: no route to {where}", "unreachable"),
    ("timed out", "unreachable: the connection to {where} timed out", "unreachable"),
    ("Network is unreachable", "unreachable: network unreachable for {where}", "unreachable"),
)


class SSHTransport(Transport):
    scheme = "ssh"

    def __init__(self, url: str, *, identity: str | None = None, known_hosts: str | None = None,
                 python: str | None = None, connect_timeout: int = 10, options: Sequence[str] = ()) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme != "ssh" or not parts.hostname:
            raise ConfigError(f"device URL {url!r} is not ssh://[user@]host[:port]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.user = unquote(parts.username) if parts.username else None
        self.host = parts.hostname
        try:
            self.port = parts.port or 22
        except ValueError:
            raise ConfigError(f"device URL {url!r} has an invalid port") from None
        self.identity = identity or query.get("identity")
        self.known_hosts = known_hosts or query.get("known_hosts")
        self.python = [python or query.get("python") or "python3"]
        self.connect_timeout = connect_timeout
        self.extra = list(options)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _ssh(self, command: str) -> list[str]:
        argv = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "LogLevel=ERROR"]
        if self.identity:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        for opt in self.extra:
            argv += ["-o", opt]
        return argv + [self.destination, command]

    def _call(self, command: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> CommandResult:
        argv = self._ssh(command)
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise DeviceError("the ssh client is not installed here (apt-get install openssh-client)",
                              reason="no ssh") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.url}: command did not finish within {timeout:.0f} s", reason="timeout") from None
        if proc.returncode == 255:  # ssh's own failure: connection, authentication, host key
            self._connection_error(proc.stderr.decode(errors="replace"))
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def _connection_error(self, stderr: str) -> None:
        where = f"{self.host}:{self.port}"
        for needle, message, reason in _CONNECT_ERRORS:
            if needle in stderr:
                raise DeviceError(f"{self.url}: " + message.format(who=self.destination, where=where, host=self.host),
                                  reason=reason)
        last = (stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise DeviceError(f"{self.url}: ssh failed: {last}", reason="ssh")

    def open(self) -> None:
        result = self._call("mktemp -d /tmp/edgeseal-verify.XXXXXXXX")
        path = result.text.strip()
        if result.returncode != 0 or not path.startswith("/tmp/edgeseal-verify."):
            raise DeviceError(f"{self.url}: cannot create a work dir on the device "
                              f"({result.stderr.decode(errors='replace').strip()[:200]})", reason="workdir")
        self.workdir = path

    def push(self, local: Path, name: str | None = None) -> str:
        dest = self.remote_path(name or Path(local).name)
        result = self._call(f"umask 077 && cat > {self.quote([dest])}", stdin=Path(local).read_bytes())
        if result.returncode != 0:
            raise DeviceError(f"{self.url}: cannot write {dest}: {result.stderr.decode(errors='replace')[:200]}",
                              reason="push")
        return dest

    def run(self, argv: Sequence[str], *, timeout: float = 600.0) -> CommandResult:
        workdir = self.quote([self.workdir]) if self.workdir else "."
        return self._call(f"cd {workdir} && {self.quote(argv)}", timeout=timeout)

    def fetch(self, remote: str) -> bytes:
        result = self._call(f"cat {self.quote([remote])}")
        if result.returncode != 0:
            raise DeviceError(f"{self.url}: cannot read {remote} on the device", reason="fetch")
        return result.stdout

    def close(self) -> None:
        if self.workdir is not None:
            workdir, self.workdir = self.workdir, None
            try:
                self._call(f"rm -rf {self.quote([workdir])}")
            except DeviceError:
                pass  # the connection is gone; nothing more can be removed from here
