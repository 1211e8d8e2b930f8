"""The emulated Raspberry Pi (qemu-rpi): aarch64 Debian root, real ARM wheels, under QEMU.

Building the device takes minutes (measured from scratch with the CLI: 413 s on the shared 2-core box),
more than this suite's time budget, so it is an explicit opt-in: the verification test runs
when the device is already built (``edgeseal device create qemu-rpi``) or when
``EDGESEAL_TEST_QEMU=1`` asks this test to build it. The recorded runs are in
``bench/results/verify_qemu_*.{json,md}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseal.targets import qemu
from edgeseal.targets.transports import DeviceError, open_transport

from verify_fixtures import digits, keys, seal_for


def test_unbuilt_device_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESEAL_CACHE_DIR", str(tmp_path))
    assert qemu.device_status("qemu-rpi")["ready"] is False
    with pytest.raises(DeviceError) as err:
        open_transport("qemu").open()
    assert err.value.reason == "not built"
    assert "edgeseal device create qemu-rpi" in str(err.value) and "qemu-user-static debootstrap" in str(err.value)
    out = subprocess.run([sys.executable, "-m", "edgeseal", "device", "status"], capture_output=True, text=True,
                         env={**os.environ, "EDGESEAL_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0 and out.stdout.split()[:3] == ["qemu-rpi", "not", "built"]


def test_device_profile_and_pins():
    dev = qemu.DEVICES["qemu-rpi"]
    assert (dev.profile, dev.arch, dev.cpu, dev.python) == ("rpi4", "arm64", "cortex-a72", "3.11")
    reqs = dev.requirements()
    assert "onnxruntime==1.27.0" in reqs and "onnxruntime>=1.17" not in reqs and "numpy>=1.24" in reqs
    argv = qemu._chroot(Path("/r"), "python3", cpu="cortex-a72")
    assert argv[:3] == ["env", "QEMU_CPU=cortex-a72", "chroot"] and argv.count("QEMU_CPU=cortex-a72") == 2


def _device_ready() -> bool:
    if os.geteuid() != 0:
        return False
    if qemu.device_status("qemu-rpi")["ready"]:
        return True
    if os.environ.get("EDGESEAL_TEST_QEMU") == "1":
        qemu.build_device("qemu-rpi")
        return True
    return False


@pytest.mark.slow
def test_verify_digits_on_emulated_aarch64(tmp_path):
    if not _device_ready():
        pytest.skip("opt-in: build the emulated Pi with `edgeseal device create qemu-rpi` (root, ~5 min) "
                    "or set EDGESEAL_TEST_QEMU=1")
    d, k = digits(), keys()
    package = seal_for(d["int8"], "rpi4", "digits-rpi4")
    root_tmp = qemu.rootfs("qemu-rpi") / "tmp"
    before = sorted(os.listdir(root_tmp))
    report_path = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "edgeseal", "verify", str(package), "--device", "qemu", "--data", str(d["data"]),
         "--reference", str(d["fp32"]), "--key", str(k["device_pem"]), "--trusted", str(k["publisher_pub"]),
         "--publisher", str(k["publisher_pem"]), "--report", str(report_path)],
        capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_path.read_text())
    assert report["device"]["machine"] == "aarch64" and report["device"]["backend"] == "onnxruntime"
    assert report["package"]["target"] == "rpi4" and report["profile"]["arch"] == "aarch64"
    vs_host = report["comparison"]["device_vs_host"]
    assert vs_host["top1_agreement"] >= 0.99 and vs_host["max_abs_error"] < 0.5  # ARM vs x86, same int8 package
    assert report["metrics"]["device"]["accuracy"] >= report["metrics"]["reference"]["accuracy"] - 0.01
    assert sorted(os.listdir(root_tmp)) == before  # the work dir is gone from the device
    assert str(qemu.rootfs("qemu-rpi")) not in Path("/proc/mounts").read_text()  # /proc and /sys unmounted


def test_device_requirements_follow_pyproject_and_a_stale_device_is_told_to_update(tmp_path, monkeypatch):
    """The runtime's dependencies come from pyproject.toml (base + [onnx] + [tflite]); a device built before a
    dependency was added is refused with the command that updates it, not left to fail at import."""
    import tomllib
    from pathlib import Path

    from edgeseal.runtime.errors import DeviceError
    from edgeseal.targets import qemu
    from edgeseal.targets.runtime_env import requirement_name, runtime_requirements

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + project["optional-dependencies"]["onnx"] \
        + project["optional-dependencies"]["tflite"]
    assert list(runtime_requirements()) == wanted
    assert not any(requirement_name(r) == "torch" for r in runtime_requirements())
    names = [requirement_name(r) for r in qemu.DEVICES["qemu-rpi"].requirements()]
    assert "blake3" in names and names.count("onnxruntime") == 1  # the device's own pin replaces the range

    root = tmp_path / "rootfs"
    venv = root / qemu.VENV.lstrip("/")
    venv.mkdir(parents=True)
    monkeypatch.setattr(qemu, "rootfs", lambda name: root)
    monkeypatch.setattr(qemu, "source_digest", lambda checkout: "stamp")
    wheels = [f"{n}-1.0-cp311-cp311-manylinux2014_aarch64.whl" for n in names if n != "blake3"]
    (venv / ".deps-ok").write_text("\n".join(wheels) + "\n")
    (venv / ".edgeseal-stamp").write_text("stamp\n")
    with pytest.raises(DeviceError, match=r"lacks blake3.*edgeseal device create qemu-rpi"):
        qemu.install_edgeseal("qemu-rpi")
    (venv / ".deps-ok").write_text("\n".join(wheels + ["blake3-1.0.11-cp311-cp311-manylinux2014_aarch64.whl"]))
    assert qemu.install_edgeseal("qemu-rpi") == "stamp"  # complete and current: nothing to do
