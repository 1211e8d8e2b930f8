"""``edgeseal run --image`` and ``python -m edgeseal.runtime classify`` on a tiny sealed classifier.

The model is built in code: logits = per-channel mean of the normalized image, so a red photo is
class 0 ("red"), a blue one class 2 ("blue") — a fact checked independently of edgeseal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import edgeseal
from edgeseal.runtime import keys
from edgeseal.runtime.preprocess import ImagePreprocess, labels_metadata

PIL = pytest.importorskip("PIL.Image")


def _colour_model() -> bytes:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["p"]), helper.make_node("Flatten", ["p"], ["logits"])]
    g = helper.make_graph(nodes, "colour", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (d / "pub.pub").write_bytes(keys.public_pem(pub.public_key()))
    (d / "dev.pem").write_bytes(keys.private_pem(dev))
    pre = ImagePreprocess(size=(8, 8), resize=10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = {**pre.to_metadata(), **labels_metadata(["red", "green", "blue"])}
    edgeseal.seal(_colour_model(), publisher=pub, devices=[dev.public_key()], name="colour", metadata=meta,
                  out=d / "colour.eseal")
    edgeseal.seal(_colour_model(), publisher=pub, devices=[dev.public_key()], name="bare", out=d / "bare.eseal")
    for name, rgb in (("red", (220, 30, 30)), ("blue", (20, 40, 230))):
        PIL.new("RGB", (30, 20), rgb).save(d / f"{name}.png")
    return d


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseal", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("photo,label,cls", [("red", "red", 0), ("blue", "blue", 2)])
def test_run_image_prints_the_top_labels(sealed, photo, label, cls):
    proc = _cli("run", "colour.eseal", "--image", f"{photo}.png", "--key", "dev.pem", "--trusted", "pub.pub", cwd=sealed)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[1]
    assert first.strip().startswith(f"1. {label} (class {cls})")
    out = json.loads(_cli("--json", "run", "colour.eseal", "--image", f"{photo}.png", "--top", "3", "--key", "dev.pem",
                          "--trusted", "pub.pub", cwd=sealed).stdout)
    assert [t["class"] for t in out["top"]][0] == cls and len(out["top"]) == 3
    assert sum(t["probability"] for t in out["top"]) == pytest.approx(1.0)


def test_device_classify_matches(sealed):
    proc = subprocess.run([sys.executable, "-m", "edgeseal.runtime", "classify", "--model", "colour.eseal", "--image",
                           "blue.png", "--key-file", "dev.pem", "--trusted", "pub.pub", "--top", "2"],
                          cwd=sealed, capture_output=True, text=True)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"] and doc["top"][0]["label"] == "blue" and len(doc["top"]) == 2


def test_a_model_without_preprocessing_says_how_to_fix_it(sealed):
    proc = _cli("run", "bare.eseal", "--image", "red.png", "--key", "dev.pem", "--trusted", "pub.pub", cwd=sealed)
    assert proc.returncode == 2
    assert "carries no image preprocessing" in proc.stderr + proc.stdout
    proc = _cli("run", "colour.eseal", "--key", "dev.pem", "--trusted", "pub.pub", cwd=sealed)
    assert proc.returncode == 2 and "--input" in proc.stderr + proc.stdout
