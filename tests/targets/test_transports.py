"""Transports: local (runtime-only venv), ssh (real sshd on loopback), adb (fake + real adb binary).

The qemu transport has its own opt-in test (test_qemu.py): building the emulated root takes minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.targets.transports import DeviceError, open_transport
from edgeseal.targets.transports.adb import ADBTransport
from edgeseal.targets.transports.local import LocalTransport

from verify_fixtures import leftovers, sshd  # noqa: F401 - sshd is a fixture


def _roundtrip(transport, tmp_path: Path) -> dict:
    """The five verbs: open, push, run, fetch, close; returns what the device runtime said about itself."""
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(70_000) + b"\x00\n\xff")
    with transport as dev:
        workdir = dev.workdir
        remote = dev.push(src, "payload.bin")
        assert remote == f"{workdir}/payload.bin"
        assert dev.fetch(remote) == src.read_bytes()  # binary-safe both ways
        echo = dev.run(["sh", "-c", "ls; echo done >&2; exit 3"])
        assert (echo.returncode, echo.text.split(), echo.stderr.strip()) == (3, ["payload.bin"], b"done")
        info = dev.runtime_info()
    assert dev.workdir is None
    return {"info": info, "workdir": workdir}


def test_local_transport_runs_the_runtime_without_torch(tmp_path):
    before = leftovers()
    out = _roundtrip(LocalTransport("local"), tmp_path)
    info = out["info"]
    assert info["ok"] and info["torch_imported"] is False
    assert info["backends"] == {"onnxruntime": "ok", "litert": "ok"}
    assert not os.path.exists(out["workdir"]) and leftovers() == before
    # the environment really has no torch (not merely "not imported")
    python = LocalTransport("local")
    python.open()
    try:
        probe = python.run([python.python[0], "-c", "import torch"])
        assert probe.returncode == 1 and b"No module named 'torch'" in probe.stderr
        assert "site-packages" not in os.environ.get("PYTHONPATH", "")
    finally:
        python.close()


def test_device_without_the_runtime_is_named(tmp_path):
    before = leftovers()
    bare = LocalTransport(f"local?python={shutil.which('python3') or '/usr/bin/python3'}")
    with bare as dev:
        # a plain system Python: no edgeseal runtime installed
        probe = dev.run([dev.python[0], "-c", "import edgeseal"])
        if probe.returncode == 0:
            pytest.skip("the system python3 has edgeseal installed")
        with pytest.raises(DeviceError) as err:
            dev.runtime_info()
    assert err.value.reason == "no runtime"
    assert "has no working edgeseal runtime" in str(err.value) and "pip install 'edgeseal[onnx]'" in str(err.value)
    assert leftovers() == before


def test_unknown_device_urls():
    with pytest.raises(ConfigError, match="unknown device 'tcp://x'"):
        open_transport("tcp://x")
    with pytest.raises(ConfigError, match="is not adb://SERIAL"):
        open_transport("adb://")


# --- ssh against a real OpenSSH server on 127.0.0.1 --------------------------------------------


def test_ssh_transport_roundtrip(sshd, tmp_path):
    from edgeseal.targets.runtime_env import ensure_runtime_env

    python = str(ensure_runtime_env())
    before = leftovers()
    t = open_transport(sshd.url(python), identity=sshd.identity, known_hosts=sshd.known_hosts)
    assert (t.user, t.host, t.port, t.python) == (sshd.user, "127.0.0.1", sshd.port, [python])
    out = _roundtrip(t, tmp_path)
    assert out["workdir"].startswith("/tmp/edgeseal-verify.")
    assert out["info"]["ok"] and out["info"]["torch_imported"] is False
    assert leftovers() == before  # the work dir was removed over ssh


def test_ssh_wrong_credentials(sshd):
    t = open_transport(sshd.url(), identity=str(sshd.dir / "wrong_key"), known_hosts=sshd.known_hosts)
    with pytest.raises(DeviceError) as err:
        t.open()
    assert err.value.reason == "auth" and "wrong credentials" in str(err.value)
    assert t.workdir is None


def test_ssh_unknown_host_key(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = open_transport(sshd.url(), identity=sshd.identity, known_hosts=str(empty))
    with pytest.raises(DeviceError, match="host key is unknown or changed") as err:
        t.open()
    assert err.value.reason == "host key"


def test_ssh_unreachable_host(sshd):
    from verify_fixtures import _free_port

    t = open_transport(f"ssh://{sshd.user}@127.0.0.1:{_free_port()}", identity=sshd.identity,
                       known_hosts=sshd.known_hosts)
    with pytest.raises(DeviceError, match="unreachable: nothing accepts SSH connections at 127.0.0.1") as err:
        t.open()
    assert err.value.reason == "unreachable"


# --- adb: a fake adb that emulates a device in a directory, and the real adb's errors --------------

FAKE_ADB = r'''#!{python}
"""Fake adb: serial 'emu-1' is a device whose /data/local/tmp is {root}; logs every call."""
import os, shutil, subprocess, sys, json
root = {root!r}
args = sys.argv[1:]
with open(os.path.join(root, "..", "adb.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] != ["-s", "emu-1"]:
    sys.stderr.write("error: device '%s' not found\n" % (args[1] if len(args) > 1 else ""))
    sys.exit(1)
cmd, rest = args[2], args[3:]
fix = lambda s: s.replace("/data/local/tmp", root)
if cmd == "get-state":
    print("device")
elif cmd == "push":
    shutil.copyfile(rest[0], fix(rest[1])); print("1 file pushed")
elif cmd == "shell":  # text: device paths in the output are mapped back
    p = subprocess.run(["sh", "-c", fix(" ".join(rest))], capture_output=True)
    sys.stdout.buffer.write(p.stdout.replace(root.encode(), b"/data/local/tmp")); sys.stderr.buffer.write(p.stderr)
    sys.exit(p.returncode)
elif cmd == "exec-out":  # binary-safe
    sys.exit(subprocess.run(["sh", "-c", fix(" ".join(rest))]).returncode)
else:
    sys.exit(2)
'''


@pytest.fixture
def fake_adb(tmp_path):
    device_root = tmp_path / "device" / "tmp"
    device_root.mkdir(parents=True)
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable, root=str(device_root)))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    return adb, device_root


def test_adb_transport_commands(fake_adb, tmp_path):
    """Everything up to the adb invocations: the exact adb command lines, and clean-up."""
    adb, device_root = fake_adb
    t = ADBTransport("adb://emu-1?python=/data/data/com.termux/files/usr/bin/python", adb=str(adb))
    src = tmp_path / "m.eseal"
    src.write_bytes(b"\x00sealed\xff" * 1000)
    with t as dev:
        assert dev.workdir.startswith("/data/local/tmp/edgeseal-verify.")
        remote = dev.push(src)
        assert dev.fetch(remote) == src.read_bytes()
        assert dev.runtime_command("info")[:3] == ["/data/data/com.termux/files/usr/bin/python", "-m", "edgeseal.runtime"]
    calls = [json.loads(line) for line in (device_root.parent / "adb.log").read_text().splitlines()]
    work = remote.rsplit("/", 1)[0]
    assert calls == [
        ["-s", "emu-1", "get-state"],
        ["-s", "emu-1", "shell", "mktemp -d /data/local/tmp/edgeseal-verify.XXXXXXXX"],
        ["-s", "emu-1", "push", str(src), remote],
        ["-s", "emu-1", "exec-out", f"cat {remote}"],
        ["-s", "emu-1", "shell", f"rm -rf {work}"],
    ]
    assert os.listdir(device_root) == []  # nothing left on the "device"


def test_adb_unknown_serial_with_fake_adb(fake_adb):
    adb, _ = fake_adb
    with pytest.raises(DeviceError, match=r"unreachable: adb has no device 'emu-2' \(error: device 'emu-2' not found\)"):
        ADBTransport("adb://emu-2", adb=str(adb)).open()


def test_real_adb_reports_a_missing_device():
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("adb is not installed (apt-get install adb)")
    env_home = os.environ.get("HOME")
    try:
        with pytest.raises(DeviceError) as err:
            ADBTransport("adb://edgeseal-no-such-device").open()
        assert err.value.reason == "unreachable"
        assert "adb has no device 'edgeseal-no-such-device' (error: device 'edgeseal-no-such-device' not found)" in str(err.value)
    finally:
        subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)  # the real adb starts a server
        assert os.environ.get("HOME") == env_home
