"""The main job as a user runs it (`bash .ci/demo` is `edgeseal demo`): --json prints one JSON document,
the exit code follows the verdict, and the figures it prints are those of the files it wrote, measured
again here independently (plain ONNX Runtime on the fp32 file, edgeseal.load on the sealed one)."""

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
    proc = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "demo", "--workdir", str(work), "--epochs", "3"],
                          capture_output=True, text=True, timeout=900)
    printed = json.loads(proc.stdout)  # exactly one JSON document on stdout, nothing else
    report = printed["report"]
    assert proc.returncode == (0 if report["passed"] else 1), proc.stderr[-2000:]
    assert printed["passed"] == report["passed"]

    # sizes are those of the files
    assert printed["fp32_onnx_bytes"] == (work / "digits-fp32.onnx").stat().st_size
    assert printed["int8_onnx_bytes"] == (work / "digits-int8.onnx").stat().st_size
    assert printed["sealed_bytes"] == (work / "digits.eseal").stat().st_size
    assert report["package"]["sha256"] == hashlib.sha256((work / "digits.eseal").read_bytes()).hexdigest()

    # accuracies, recomputed: the sealed int8 model through edgeseal.load, the fp32 model through plain ORT
    data = np.load(work / "digits-test.npz")
    x, y = data["x"], data["y"]
    sealed = edgeseal.load(work / "digits.eseal", key=work / "device.pem", trusted=[work / "publisher.pub"])
    device_pred = np.argmax(sealed.run({sealed.inputs[0].name: x})[sealed.outputs[0].name], axis=1)
    sealed.close()
    fp32 = ort.InferenceSession(str(work / "digits-fp32.onnx"), providers=["CPUExecutionProvider"])
    ref_pred = np.argmax(fp32.run(None, {fp32.get_inputs()[0].name: x})[0], axis=1)
    metrics = report["metrics"]
    assert metrics["device"]["n"] == len(y) == report["data"]["n_samples"]
    assert metrics["device"]["accuracy"] == pytest.approx(float(np.mean(device_pred == y)), abs=1e-12)
    assert metrics["reference"]["accuracy"] == pytest.approx(float(np.mean(ref_pred == y)), abs=1e-12)
    drop = 100 * (metrics["reference"]["accuracy"] - metrics["device"]["accuracy"])
    assert report["accuracy_drop_points"] == pytest.approx(drop, abs=1e-9)
    assert report["passed"] == (drop <= report["max_drop_points"] and all(
        c["passed"] for c in report["checks"] if c["gate"]))
    assert report["comparison"]["device_vs_reference"]["top1_agreement"] == pytest.approx(
        float(np.mean(device_pred == ref_pred)), abs=1e-12)

    # the signed report checks out with the CLI the summary names
    check = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "verify-report", str(work / "verification.json"),
                            "--trusted", str(work / "publisher.pub")], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is not False, check.stdout + check.stderr
