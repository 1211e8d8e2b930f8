"""The device-side runner: ``python -m edgeseal.runtime eval`` (numbers, JSON errors, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime.evaluate import classification_metrics, latency_summary, outputs_digest

from verify_fixtures import digits, keys, seal_for


def runner(*args: str) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "edgeseal.runtime", *args], capture_output=True, text=True, timeout=300)
    return out.returncode, json.loads(out.stdout)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    d, k = digits(), keys()
    tmp = tmp_path_factory.mktemp("runner")
    data = tmp / "data.eseal"
    edgeseal.seal(d["data"], publisher=k["publisher_pem"], devices=[k["device_pub"]], kind="dataset", out=data)
    return {"model": seal_for(d["int8"], "linux-x86_64", "digits-x86"), "data": data, "tmp": tmp, **k}


def test_eval_numbers(sealed):
    outputs = sealed["tmp"] / "out.npz"
    code, result = runner("eval", "--model", str(sealed["model"]), "--data", str(sealed["data"]), "--key-file",
                          str(sealed["device_pem"]), "--trusted", str(sealed["publisher_pub"]), "--outputs",
                          str(outputs), "--max-samples", "100")
    assert code == 0 and result["ok"] and result["schema"] == "edgeseal.eval/1"
    logits = np.load(outputs)["logits"]
    labels = np.load(digits()["data"])["labels"][:100]
    assert logits.shape == (100, 10) and result["outputs"]["logits"]["shape"] == [100, 10]
    assert result["outputs_sha256"] == outputs_digest({"logits": logits})
    assert result["metrics"] == pytest.approx(classification_metrics(logits, labels))
    assert result["metrics"]["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == labels)))
    lat = result["latency_ms"]
    assert lat["n"] == 100 and 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["max"]
    assert result["load_seconds"] > 0 and result["peak_rss_mb"] > 10 and result["device"]["backend"] == "onnxruntime"
    assert result["data"]["n_samples"] == 100 and result["package"]["target"] == "linux-x86_64"


def test_metric_functions_by_hand():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    m = classification_metrics(scores, np.array([0, 1, 1, 1]))  # predictions 0, 1, 0, 1
    assert m["accuracy"] == 0.75
    # class 0: P=1/2 R=1/1; class 1: P=2/2 R=2/3
    assert m["precision_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall_macro"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["f1_macro"] == pytest.approx((2 * 0.5 / 1.5 + 2 * (2 / 3) / (5 / 3)) / 2)
    lat = latency_summary([0.001] * 19 + [0.021])
    assert (lat["n"], lat["p50"], lat["max"]) == (20, 1.0, 21.0) and lat["p95"] == pytest.approx(2.0)


def test_eval_errors_are_json_with_exit_codes(sealed, tmp_path):
    base = ["--key-file", str(sealed["device_pem"]), "--trusted", str(sealed["publisher_pub"])]
    code, result = runner("eval", "--model", str(sealed["model"]), "--data", str(sealed["model"]), *base)
    assert (code, result["ok"], result["error"]) == (2, False, "ConfigError")
    assert "holds a model, not a dataset" in result["message"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((3, 1, 8, 7), np.float32))
    bad_sealed = tmp_path / "bad.eseal"
    edgeseal.seal(bad, publisher=sealed["publisher_pem"], devices=[sealed["device_pub"]], kind="dataset", out=bad_sealed)
    code, result = runner("eval", "--model", str(sealed["model"]), "--data", str(bad_sealed), *base)
    assert (code, result["error"]) == (2, "InvalidInput") and "samples of shape (1, 8, 7)" in result["message"]
    code, result = runner("eval", "--model", str(sealed["model"]), "--data", str(sealed["data"]),
                          "--key-file", str(sealed["device_pem"]), "--trusted", str(sealed["other_pub"]))
    assert (code, result["error"]) == (3, "UntrustedPublisher")


def test_runner_never_imports_torch():
    code = ("import sys, edgeseal.runtime.__main__, edgeseal.runtime.evaluate; "
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, sorted(sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_float_data_for_a_fully_quantized_model():
    """A full-integer TFLite model takes int8: float data is quantized with the input's params,
    integer outputs are dequantized for comparison with a float reference."""
    from edgeseal.runtime.evaluate import dequantize_outputs, split_dataset
    from edgeseal.runtime.tensors import QuantParams, TensorSpec

    spec = TensorSpec(name="x", dtype="int8", shape=(1, 4), quant=QuantParams(scale=(0.5,), zero_point=(-10,)))
    feeds, labels = split_dataset({"x": np.array([[0.0, 1.0, -2.0, 200.0]], np.float32), "labels": np.array([3])},
                                  (spec,))
    assert feeds["x"].dtype == np.int8 and feeds["x"].tolist() == [[-10, -8, -14, 127]]  # 200 clips at 127
    assert labels.tolist() == [3]
    out = dequantize_outputs({"x": feeds["x"]}, (spec,))
    assert out["x"].dtype == np.float32 and out["x"].tolist() == [[0.0, 1.0, -2.0, 68.5]]
    plain = TensorSpec(name="x", dtype="int8", shape=(1, 4))
    with pytest.raises(edgeseal.runtime.errors.InvalidInput, match="is float32 but the model input is int8"):
        split_dataset({"x": np.zeros((1, 4), np.float32)}, (plain,))
