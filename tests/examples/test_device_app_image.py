"""examples/device-app: POST /classify on a sealed image classifier (preprocessing from the manifest)."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
PIL = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
from test_run_image import sealed  # noqa: E402,F401 - the sealed colour classifier fixture


def _post(port: int, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_classify_endpoint(sealed):  # noqa: F811 - pytest fixture
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "device-app" / "digits_service.py"), "--model",
                             str(sealed / "colour.eseal"), "--key", str(sealed / "dev.pem"), "--trusted",
                             str(sealed / "pub.pub"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split()[0])
        for name, label in (("red", "red"), ("blue", "blue")):
            status, doc = _post(port, "/classify?top=2", (sealed / f"{name}.png").read_bytes(), "image/png")
            assert status == 200 and doc["top"][0]["label"] == label and len(doc["top"]) == 2
        buf = io.BytesIO()
        PIL.new("RGB", (16, 16), (230, 20, 20)).save(buf, format="JPEG")
        status, doc = _post(port, "/classify", buf.getvalue(), "image/jpeg")
        assert status == 200 and doc["top"][0]["class"] == 0 and len(doc["top"]) == 3  # 3 classes, top 5 asked
        status, doc = _post(port, "/classify", b"not an image", "image/png")
        assert status == 400 and "send JPEG or PNG" in doc["error"]
        status, doc = _post(port, "/classify?top=x", b"x", "image/png")
        assert status == 400 and "top=" in doc["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
