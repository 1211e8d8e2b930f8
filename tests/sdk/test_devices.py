"""Device friction: one name per emulated device everywhere, progress in logs, device errors exit 5."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from edgeseal.runtime import errors
from edgeseal.targets import qemu
from edgeseal.targets.transports import DeviceError, canonical_device, open_transport, preflight


def test_device_error_is_in_the_one_hierarchy_with_exit_5():
    assert DeviceError is errors.DeviceError and DeviceError.exit_code == 5
    assert issubclass(DeviceError, errors.EdgesealError) and "DeviceError" in errors.__all__


def test_one_name_per_emulated_device_everywhere():
    from edgeseal.cli import build_parser

    for name in qemu.DEVICES:
        assert canonical_device(name) == f"qemu://{name}" == canonical_device(f"qemu://{name}")
        assert open_transport(name).device == name  # --device qemu-rpi5 is the same as qemu://qemu-rpi5
        args = build_parser().parse_args(["device", "create", name])
        assert args.name == name
    assert canonical_device("qemu") == "qemu://qemu-rpi" and canonical_device("local") == "local"
    help_text = " ".join(subprocess.run([sys.executable, "-m", "edgeseal", "device", "create", "--help"],
                                        capture_output=True, text=True, timeout=60).stdout.split())
    assert "qemu-rpi5" in help_text and "qemu-rpi" in help_text and 'sudo "$(command -v edgeseal)"' in help_text
    verify_help = subprocess.run([sys.executable, "-m", "edgeseal", "verify", "--help"],
                                 capture_output=True, text=True, timeout=60).stdout
    assert "qemu://qemu-rpi5" in verify_help


def test_preflight_names_the_problem_before_any_work():
    with pytest.raises(DeviceError, match=r"unreachable: nothing accepts connections at 127\.0\.0\.1:1"):
        preflight("ssh://nobody@127.0.0.1:1")
    with pytest.raises(errors.ConfigError, match="unknown emulated device 'qemu-rpi9'"):
        preflight("qemu://qemu-rpi9")
    preflight("local")
    if qemu.device_status("qemu-rpi5")["ready"]:
        pytest.skip("the emulated Pi is built here")
    with pytest.raises(DeviceError, match=r"not built yet.*device create qemu-rpi5") as err:
        preflight("qemu-rpi5")
    assert err.value.exit_code == 5


def test_device_create_progress_reaches_a_log_file():
    """Not on a terminal, every step and (at most every N seconds) the build's output are written as lines."""
    from edgeseal.progress import Progress

    buf = io.StringIO()
    sink = Progress(stream=buf, every=0.0)
    sink.step("debootstrap an arm64 Debian root", 1, 4)
    sink.detail("I: Retrieving Packages")
    sink.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and "[1/4] debootstrap" in lines[0] and "I: Retrieving Packages" in lines[1]
    quiet = io.StringIO()
    sink = Progress(stream=quiet, every=3600.0)
    sink.step("venv", 3, 4)
    for _ in range(100):
        sink.detail("pip output")  # throttled: a log gets a line per interval, not one per pip line
    assert len(quiet.getvalue().splitlines()) == 1

def test_device_status_json_and_text_read_the_device_folders(tmp_path, monkeypatch, capsys):
    """`--json device status` is one JSON object whose `ready` is whether the device's marker file is on disk
    (checked here against a cache folder this test fills); the text form has one line per device."""
    import json

    from edgeseal.cli import main

    monkeypatch.setenv("EDGESEAL_CACHE_DIR", str(tmp_path))
    assert main(["--json", "device", "status"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data["devices"]] == list(qemu.DEVICES)
    assert all(d["ready"] is False and d["path"].startswith(str(tmp_path)) for d in data["devices"])
    # a built device: its marker file, as build_device writes it
    root = tmp_path / "devices" / "qemu-rpi"
    root.mkdir(parents=True, exist_ok=True)  # status may have made the folder; the marker says "built"
    (root / "device.json").write_text(json.dumps({"arch": "arm64", "suite": "bookworm", "python": "3.11",
                                                  "path": str(root), "wheels": []}))
    assert main(["--json", "device", "status"]) == 0
    ready = {d["name"]: d["ready"] for d in json.loads(capsys.readouterr().out)["devices"]}
    expected = {n: (tmp_path / "devices" / (qemu.DEVICES[n].root or n) / "device.json").is_file() for n in qemu.DEVICES}
    assert ready == expected and ready["qemu-rpi"] is True
    assert main(["device", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(qemu.DEVICES)
    assert all(("not built" not in line) == expected[line.split()[0]] for line in lines)


def test_usage_errors_are_json_under_json(capsys):
    """A command line argparse refuses is one JSON object (exit 2) under --json, argparse's text otherwise."""
    import json

    from edgeseal.cli import main

    assert main(["--json", "device", "bogus"]) == 2
    out = capsys.readouterr()
    err = json.loads(out.out)
    assert err["ok"] is False and err["error"] == "UsageError" and "invalid choice: 'bogus'" in err["message"]
    assert err["hint"].startswith("usage: edgeseal device")
    assert main(["device", "remove", "qemu-rpi9"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "edgeseal device remove: error: argument name: invalid choice: 'qemu-rpi9'" in out.err
    assert main(["--json", "seal"]) == 2
    assert "the following arguments are required: model, --out/-o" in json.loads(capsys.readouterr().out)["message"]
