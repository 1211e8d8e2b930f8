"""edgeseal verify over ssh:// against a real OpenSSH server on 127.0.0.1 (started here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "targets"))
from verify_fixtures import digits, keys, leftovers, seal_for, sshd  # noqa: E402,F401 - sshd is a fixture


def _verify(sshd, url: str, identity: str, *extra: str) -> subprocess.CompletedProcess:
    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    return subprocess.run(
        [sys.executable, "-m", "edgeseal", *extra, "verify", str(package), "--device", url, "--data", str(d["data"]),
         "--reference", str(d["fp32"]), "--key", str(k["device_pem"]), "--trusted", str(k["publisher_pub"]),
         "--publisher", str(k["publisher_pem"]), "--identity", identity, "--known-hosts", sshd.known_hosts],
        capture_output=True, text=True, timeout=600,
    )


def test_verify_over_ssh_passes(sshd):
    from edgeseal.targets.runtime_env import ensure_runtime_env

    python = str(ensure_runtime_env())  # the "Pi": a runtime-only Python behind sshd
    before = leftovers()
    out = _verify(sshd, sshd.url(python), sshd.identity, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True and report["device"]["url"].startswith("ssh://")
    assert report["metrics"]["device"] == report["metrics"]["host"]
    assert report["comparison"]["device_vs_host"]["identical"] is True
    assert report["signature"]["algorithm"] == "ed25519"
    assert leftovers() == before  # the work dir on the device was removed


def test_verify_over_ssh_wrong_credentials(sshd):
    before = leftovers()
    out = _verify(sshd, sshd.url(), str(sshd.dir / "wrong_key"))
    assert out.returncode == 5 and "Traceback" not in out.stderr
    assert "wrong credentials: the device refused the key" in out.stderr
    assert leftovers() == before
