"""The main job as a user runs it (`bash .ci/demo` is `edgeseal demo`, the built-in release recipe run by
`edgeseal build`): --json prints one JSON document, the exit code follows the verdict, and the figures it
prints are those of the files it wrote, measured again here independently (the payload decrypted, plain
ONNX Runtime on the fp32 file, edgeseal.load on the sealed one)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import edgeseal

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")


@pytest.mark.slow
def test_json_demo_prints_one_document_whose_figures_match_its_files(tmp_path):
    work = tmp_path / "demo"
    cmd = [sys.executable, "-m", "edgeseal", "--json", "demo", "--workdir", str(work), "--epochs", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    printed = json.loads(proc.stdout)  # exactly one JSON document on stdout, nothing else
    report = printed["report"]
    assert report is not None, proc.stderr[-3000:]
    assert proc.returncode == (0 if printed["passed"] else 1), proc.stderr[-2000:]
    assert printed["passed"] == report["passed"]

    # the recipe it ran is the built-in one, written where the summary says, and build reads it
    from edgeseal.release import load_release
    from edgeseal.release.demo import demo_recipe

    assert (work / "release.toml").read_text() == demo_recipe(epochs=3) == open(printed["recipe"]).read()
    assert [t.name for t in load_release(work / "release.toml").targets] == ["linux-x86_64"]
    assert [s["stage"] for s in printed["build"]["stages"]] == ["model", "compress", "seal", "verify"]

    # sizes are those of the files; the int8 size is that of the model inside the sealed package
    target = work / "release" / "linux-x86_64"
    package = target / "digits.eseal"
    device_key, publisher = work / "keys" / "linux-x86_64-device.pem", work / "keys" / "publisher.pub"
    assert printed["fp32_onnx_bytes"] == (work / "digits-fp32.onnx").stat().st_size
    assert printed["sealed_bytes"] == package.stat().st_size
    _, plain = edgeseal.open_payload(package, key=device_key, trusted=[publisher])
    assert printed["int8_onnx_bytes"] == len(plain.data)
    assert report["package"]["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()

    # accuracies, recomputed: the sealed int8 model through edgeseal.load, the fp32 model through plain ORT
    data = np.load(work / "digits-test.npz")
    x, y = data["x"], data["y"]
    sealed = edgeseal.load(package, key=device_key, trusted=[publisher])
    device_pred = np.argmax(sealed.run({sealed.inputs[0].name: x})[sealed.outputs[0].name], axis=1)
    sealed.close()
    fp32 = ort.InferenceSession(str(work / "digits-fp32.onnx"), providers=["CPUExecutionProvider"])
    ref_pred = np.argmax(fp32.run(None, {fp32.get_inputs()[0].name: x})[0], axis=1)
    metrics = report["metrics"]
    assert metrics["device"]["n"] == len(y) == report["data"]["n_samples"]
    assert metrics["device"]["accuracy"] == pytest.approx(float(np.mean(device_pred == y)), abs=1e-12)
    assert metrics["reference"]["accuracy"] == pytest.approx(float(np.mean(ref_pred == y)), abs=1e-12)
    drop = 100 * (metrics["reference"]["accuracy"] - metrics["device"]["accuracy"])
    assert report["accuracy_drop_points"] == pytest.approx(drop, abs=5e-7)  # the report keeps 6 decimals
    assert report["passed"] == (drop <= report["max_drop_points"] and all(
        c["passed"] for c in report["checks"] if c["gate"]))
    assert report["comparison"]["device_vs_reference"]["top1_agreement"] == pytest.approx(
        float(np.mean(device_pred == ref_pred)), abs=1e-12)

    # the signed report checks out with the CLI the summary names
    check = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "verify-report",
                            str(target / "verification.json"), "--trusted", str(publisher)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is not False, check.stdout + check.stderr

    # again, nothing changed: every stage from the demo's cache, the same package byte for byte
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    second = json.loads(again.stdout)
    assert second["cached"] == ["model", "compress", "seal", "verify"], again.stderr[-2000:]
    assert hashlib.sha256(package.read_bytes()).hexdigest() == report["package"]["sha256"]
    assert second["report"] == report
