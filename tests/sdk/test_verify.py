"""edgeseal verify over the local transport: the pass, the signed report, the release gate, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "targets"))
from verify_fixtures import digits, keys, leftovers, seal_for, workspace  # noqa: E402

from edgeseal.runtime.errors import InvalidPackage  # noqa: E402
from edgeseal.verify import VerifyConfig, verify, verify_report  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseal", *args], capture_output=True, text=True, timeout=600)


def common(k: dict) -> list[str]:
    return ["--key", str(k["device_pem"]), "--trusted", str(k["publisher_pub"]), "--publisher", str(k["publisher_pem"])]


def test_verify_local_passes_and_signs_the_report(tmp_path):
    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    before = leftovers()
    report_path = tmp_path / "report.json"
    out = cli("verify", str(package), "--device", "local", "--data", str(d["data"]), "--reference", str(d["fp32"]),
              "--report", str(report_path), *common(k))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "edgeseal verify: PASSED" in out.stdout and "Traceback" not in out.stderr
    report = json.loads(report_path.read_text())
    # names the package by hash, and the numbers hang together
    assert report["package"]["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert report["package"]["target"] == "linux-x86_64" and report["device"]["machine"] == "x86_64"
    m = report["metrics"]
    assert m["device"]["n"] == m["host"]["n"] == report["data"]["n_samples"] == 360
    assert m["device"] == m["host"]  # same package, same CPU architecture
    assert 0.9 < m["device"]["accuracy"] <= 1.0 and 0.9 < m["reference"]["accuracy"] <= 1.0
    assert report["accuracy_drop"] == pytest.approx(m["reference"]["accuracy"] - m["device"]["accuracy"], abs=1e-6)
    assert report["accuracy_drop"] <= 0.01
    vs_ref, vs_host = report["comparison"]["device_vs_reference"], report["comparison"]["device_vs_host"]
    assert vs_ref["max_abs_error"] > 0 and 0.98 <= vs_ref["top1_agreement"] <= 1.0  # int8 vs fp32 differ a little
    assert vs_host["top1_agreement"] == 1.0
    assert report["latency_ms"]["n"] == 360 and 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert report["load_seconds"] > 0 and report["peak_rss_mb"] > 10
    assert [c["name"] for c in report["checks"] if c["gate"]] == ["accuracy budget", "outputs complete", "memory budget"]
    assert leftovers() == before  # nothing left on the "device"

    # the signature checks, with the library and with the CLI ...
    assert verify_report(report_path, [k["publisher_pub"]])["passed"] is True
    ok = cli("verify-report", str(report_path), "--trusted", str(k["publisher_pub"]))
    assert ok.returncode == 0 and "signature valid" in ok.stdout
    # ... and fails for another publisher or an edited report
    with pytest.raises(InvalidPackage, match="does not verify"):
        verify_report(report_path, [k["other_pub"]])
    forged = tmp_path / "forged.json"
    forged.write_text(report_path.read_text().replace('"passed":true', '"passed":false', 1))
    shutil.copy(f"{report_path}.sig", f"{forged}.sig")
    bad = cli("verify-report", str(forged), "--trusted", str(k["publisher_pub"]))
    assert bad.returncode == 3 and "does not verify" in bad.stderr and "Traceback" not in bad.stderr


def test_release_gate_fails_an_over_pruned_model():
    d, k = digits(), keys()
    package = seal_for(d["pruned_int8"], "linux-x86_64", "digits-pruned")
    out = cli("verify", str(package), "--data", str(d["data"]), "--reference", str(d["fp32"]), "--max-drop", "2",
              *common(k))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "edgeseal verify: FAILED" in out.stdout
    assert "release gate FAILED: accuracy" in out.stdout and "budget 2 points" in out.stdout
    # the old fraction still works, says what it means in points, and gives the same verdict
    as_json = cli("--json", "verify", str(package), "--data", str(d["data"]), "--reference", str(d["fp32"]),
                  "--budget", "0.02", *common(k))
    assert "--budget 0.02 is a fraction and deprecated; it means --max-drop 2" in as_json.stderr
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["passed"] is False
    assert report["accuracy_drop"] > 0.02 and report["max_drop_points"] == 2.0
    assert report["accuracy_drop_points"] == pytest.approx(100 * report["accuracy_drop"], abs=1e-4)
    assert report["metrics"]["reference"]["accuracy"] - report["metrics"]["device"]["accuracy"] == pytest.approx(
        report["accuracy_drop"], abs=1e-6)


def test_verify_library_api_with_a_sealed_dataset(tmp_path):
    import edgeseal

    d, k = digits(), keys()
    package = seal_for(d["int8"], None, "digits-notarget")
    sealed_data = tmp_path / "data.eseal"
    edgeseal.seal(d["data"], publisher=k["publisher_pem"], devices=[k["device_pub"]], kind="dataset", out=sealed_data)
    config = VerifyConfig(device="local", key=k["device_pem"], trusted=(k["publisher_pub"],), max_samples=50)
    report = verify(package, sealed_data, config)
    assert report.passed and report.signature is None  # no publisher key given: not signed, and it says so
    assert report.data["data"]["n_samples"] == 50 and report.data["latency_ms"]["n"] == 50
    assert report.data["data"]["sha256"] == hashlib.sha256(sealed_data.read_bytes()).hexdigest()
    assert "report NOT signed" in report.text() and report.data["profile"] is None
    # the one report model: JSON, text and page all come from this report
    from edgeseal.report import render

    assert json.loads(render(report, "json")) == report.to_dict() == report.data
    page = render(report, "html")
    assert page.startswith("<!doctype html>") and report.data["package"]["sha256"] in page


# --- bad input: a clear message, no traceback, nothing left behind ----------------------------------


def _bad(args: list[str], code: int, *needles: str) -> None:
    before = leftovers()
    out = cli(*args)
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert leftovers() == before


def test_package_for_another_target():
    d, k = digits(), keys()
    package = seal_for(d["int8"], "rpi4", "digits-rpi4")
    _bad(["verify", str(package), "--data", str(d["data"]), *common(k)], 2,
         "sealed for target 'rpi4' (aarch64) but local is x86_64", "--device qemu")
    _bad(["verify", str(package), "--data", str(d["data"]), "--target", "rpi5", *common(k)], 2,
         "was sealed for target 'rpi4', not 'rpi5'")


def test_device_without_the_runtime():
    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/python3"
    _bad(["verify", str(package), "--device", f"local?python={python}", "--data", str(d["data"]), *common(k)], 5,
         "the device has no working edgeseal runtime", "pip install 'edgeseal[onnx]'")


def test_unreachable_host():
    if shutil.which("ssh") is None:
        pytest.skip("the ssh client is not installed (apt-get install -y openssh-client)")
    from verify_fixtures import _free_port

    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    _bad(["verify", str(package), "--device", f"ssh://nobody@127.0.0.1:{_free_port()}", "--data", str(d["data"]),
          *common(k)], 5, "unreachable: nothing accepts SSH connections at 127.0.0.1")


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"pixels": np.zeros((4, 1, 8, 8), np.float32), "other": np.zeros((4, 3), np.float32)},
         "evaluation data has arrays ['other', 'pixels'] but the model needs inputs ['image']"),
        ({"image": np.zeros((4, 64), np.float32)}, "has samples of shape (64,) but the model input 'image' takes"),
        ({"image": np.zeros((4, 1, 8, 8), np.float64)}, "is float64 but the model input is float32"),
        ({"image": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(3, np.int64)},
         "disagree on the number of samples"),
    ],
)
def test_data_that_does_not_match_the_model(tmp_path, arrays, needle):
    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    _bad(["verify", str(package), "--data", str(data), *common(k)], 2, needle)


def test_wrong_key_and_plain_data_without_publisher(tmp_path):
    from edgeseal.runtime import keys as rk

    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(rk.private_pem(rk.generate_device_key()))
    _bad(["verify", str(package), "--data", str(d["data"]), "--key", str(stranger), "--trusted",
          str(k["publisher_pub"]), "--publisher", str(k["publisher_pem"])], 3, "edgeseal: error:")
    _bad(["verify", str(package), "--data", str(d["data"]), "--key", str(k["device_pem"])], 2,
         "give --publisher to seal it for the device")
    _bad(["verify", str(package), "--data", str(d["data"]), "--budget", "2", *common(k)], 2,
         "--budget 2.0 is a fraction in [0, 1] (deprecated); use --max-drop POINTS")
    _bad(["verify", str(package), "--data", str(d["data"]), "--max-drop", "200", *common(k)], 2,
         "max_drop is the largest accuracy drop allowed in points")


def test_unlabelled_data_is_gated_on_fidelity_to_the_reference(tmp_path):
    d, k = digits(), keys()
    package = seal_for(d["int8"], "linux-x86_64", "digits-x86")
    with np.load(d["data"]) as npz:
        images = {name: npz[name] for name in npz.files if name != "labels"}
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, **images)
    base = ["verify", str(package), "--data", str(unlabelled), "--reference", str(d["fp32"]), *common(k)]
    ok = cli(*base, "--report", str(tmp_path / "ok.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads((tmp_path / "ok.json").read_text())
    gate = next(c for c in report["checks"] if c["name"] == "fidelity budget")
    assert gate["gate"] and gate["passed"]
    f = report["fidelity"]
    assert f["budget"] == {"min_agreement": pytest.approx(0.99)}  # no labels, no --min-*: 1 - budget
    # independent measurement: the int8 and fp32 files run directly with ONNX Runtime on the same images
    import onnxruntime as ort

    x = next(iter(images.values())).astype(np.float32)
    outs = []
    for path in (d["int8"], d["fp32"]):
        sess = ort.InferenceSession(Path(path).read_bytes(), providers=["CPUExecutionProvider"])
        outs.append(np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i : i + 1]})[0] for i in range(len(x))]))
    assert f["top1_agreement"] == pytest.approx(float(np.mean(outs[0].argmax(1) == outs[1].argmax(1))))
    assert 0.98 <= f["top1_agreement"] <= 1.0 and 15.0 < f["sqnr_db"] < 80.0
    assert report["comparison"]["device_vs_host"]["top1_agreement"] is None  # no labels, no class names: no classes
    # the same int8 model sealed with class names (as an image classifier is): device vs host and vs reference
    # agreement are reported too, without labels
    import edgeseal
    from edgeseal.runtime.preprocess import labels_metadata

    named = tmp_path / "named.eseal"
    edgeseal.seal(d["int8"], publisher=k["publisher_pem"], devices=[k["device_pub"]], target="linux-x86_64",
                  metadata=labels_metadata([f"digit {i}" for i in range(10)]), out=named)
    base[1] = str(named)
    assert cli(*base, "--report", str(tmp_path / "named.json")).returncode == 0
    comparison = json.loads((tmp_path / "named.json").read_text())["comparison"]
    assert comparison["device_vs_host"]["top1_agreement"] == 1.0  # the local device runs the same package
    assert comparison["device_vs_reference"]["top1_agreement"] == pytest.approx(f["top1_agreement"])
    # an SQNR no int8 model reaches fails the gate, with exit 1 and the measure named
    bad = cli(*base, "--min-sqnr", "90")
    assert bad.returncode == 1
    assert "release gate FAILED" in bad.stdout and "logit SQNR" in bad.stdout and "< 90.0 dB" in bad.stdout
