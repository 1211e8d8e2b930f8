"""examples/device-app: the digits service in its own runtime-only process, under a short bounded load.

The model is built host side (train → ONNX → int8 → seal) once per module; the service process
imports only the runtime (its /health says torch is not loaded). The load is the benchmark's own
driver (bench/device_app_load.py) with a small bound.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "device-app"


def _module(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


bench = _module(ROOT / "bench" / "device_app_load.py", "device_app_load")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("device-app")
    info = _module(APP / "build_model.py", "device_app_build").build(out, epochs=6, show_progress=False)
    test = np.load(out / "digits_test.npz")
    return out, info, test["images"], test["labels"]


def _post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_service_holds_under_concurrent_load_with_runtime_only(built):
    out, info, images, labels = built
    assert info["int8_bytes"] < info["fp32_bytes"] / 3  # the sealed model really is the int8 one
    expected = bench.host_predictions(out, images)
    config = bench.LoadConfig(clients=8, max_requests=480, max_seconds=60, rounds=3, warmup=40)
    with bench.Service(out) as service:
        health = bench.get_json(service.port, "/health")
        assert health["torch_loaded"] is False and health["heavy_modules_loaded"] == []
        assert health["backend"] == "onnxruntime" and health["model"] == "digits-int8"
        result = bench.run_load(service.port, service.pid, images, expected, labels, config)
        after = bench.get_json(service.port, "/health")
        code = service.stop()
    assert result["stopped_by"] == "requests"
    assert result["requests_attempted"] == result["requests_served"] == 480
    assert result["errors"] == 0, result["error_kinds"]
    assert result["predictions_differing_from_host_runtime"] == 0
    assert result["accuracy_vs_labels"] >= 0.9
    assert after["requests_served"] == 480 + 40 and after["errors"] == 0  # the service counted the same
    assert after["torch_loaded"] is False
    # the whole third-party footprint of the app process: the runtime and its backend, nothing else
    assert after["third_party_modules"] == ["blake3", "cryptography", "edgeseal", "numpy", "onnxruntime"]
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 10_000
    # a keep-alive reply stalled by Nagle + delayed ACK takes >= 40 ms; the service sets TCP_NODELAY
    assert lat["p50"] < 35, lat
    assert len(result["rss"]["after_each_round_bytes"]) == 3
    assert abs(result["rss"]["growth_bytes"]) < 16 * 2**20  # no leak per request (~0 measured; see bench/)
    assert code == 0 and "stopped after 520 requests, 0 errors" in service.stdout_tail


def test_bad_requests_get_400_naming_the_problem_and_the_service_keeps_serving(built):
    out, _, images, labels = built
    with bench.Service(out) as service:
        port = service.port
        status, doc = _post(port, b'{"image": [[1, 2]]}')
        assert status == 400 and "8x8" in doc["error"]
        status, doc = _post(port, json.dumps({"image": (images[0] * 2).tolist()}).encode())
        assert status == 400 and "0..16" in doc["error"]
        status, doc = _post(port, b"not json")
        assert status == 400 and "JSON" in doc["error"]
        status, doc = _post(port, b"\x00" * 65, "application/octet-stream")
        assert status == 400 and "multiple of 64" in doc["error"]
        # raw bytes and a JSON batch give the same answers
        status, raw = _post(port, images[:5].astype(np.uint8).tobytes(), "application/octet-stream")
        status2, batch = _post(port, json.dumps({"images": images[:5].tolist()}).encode())
        assert status == status2 == 200 and raw["digits"] == batch["digits"]
        assert (np.array(raw["digits"]) == labels[:5]).mean() >= 0.8
        assert all(0.0 < c <= 1.0 for c in raw["confidence"])
        health = bench.get_json(port, "/health")
        assert health["errors"] == 4 and health["requests_served"] == 2
    assert service.returncode == 0


def test_service_refuses_non_loopback_and_tampered_models(built, tmp_path):
    out, *_ = built
    app = [sys.executable, str(APP / "digits_service.py"), "--key", str(out / "device.pem"),
           "--trusted", str(out / "publisher.pub"), "--port", "0"]
    proc = subprocess.run(app + ["--model", str(out / "digits.eseal"), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a loopback address" in proc.stderr
    tampered = bytearray((out / "digits.eseal").read_bytes())
    tampered[len(tampered) // 2] ^= 1
    (tmp_path / "tampered.eseal").write_bytes(tampered)
    proc = subprocess.run(app + ["--model", str(tmp_path / "tampered.eseal")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3 and "invalid" in proc.stderr and proc.stdout == ""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = subprocess.run(app[:-1] + [port, "--model", str(out / "digits.eseal")], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
