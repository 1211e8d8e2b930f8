"""Full-integer TFLite models take and return float by default (their own scales), raw int8 on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import FloatIO, InvalidInput, QuantParams, TensorSpec
from edgeseal.runtime.quantio import dequantize, quantize


def test_quantize_by_hand_per_tensor_and_per_axis():
    spec = TensorSpec(name="x", dtype="int8", shape=(1, 4), quant=QuantParams(scale=(0.5,), zero_point=(-10,)))
    assert quantize(np.array([[0.0, 1.0, -2.1, 200.0]]), spec).tolist() == [[-10, -8, -14, 127]]
    assert dequantize(np.array([[-10, -8, -14, 127]], np.int8), spec).tolist() == [[0.0, 1.0, -2.0, 68.5]]
    per = TensorSpec(name="w", dtype="uint8", shape=(2, 3),
                     quant=QuantParams(scale=(1.0, 0.25), zero_point=(128, 0), axis=0))
    x = np.array([[1.0, -1.0, 500.0], [0.5, 0.25, -3.0]])
    assert quantize(x, per).tolist() == [[129, 127, 255], [2, 1, 0]]
    assert dequantize(quantize(x, per), per).tolist() == [[1.0, -1.0, 127.0], [0.5, 0.25, 0.0]]
    with pytest.raises(InvalidInput, match="has no quantization parameters"):
        quantize(x, TensorSpec(name="f", dtype="float32", shape=(2, 3)))


@pytest.fixture(scope="module")
def int8_tflite(tflite_model):
    """The runtime tests' small conv net, full-integer int8 with ai-edge-quantizer (int8 input and output)."""
    pytest.importorskip("ai_edge_quantizer")
    from edgeseal.converters.quantize import quantize_tflite_int8

    x = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
    return quantize_tflite_int8(tflite_model, x)


def _by_hand(model: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize with the interpreter's own input scale, invoke plain LiteRT, dequantize with its output scale."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert i["dtype"] == np.int8 and o["dtype"] == np.int8  # the case under test: integer I/O
    (s_in, z_in), (s_out, z_out) = i["quantization"], o["quantization"]
    xq = np.clip(np.round(x / s_in) + z_in, -128, 127).astype(np.int8)
    it.set_tensor(i["index"], xq)
    it.invoke()
    raw = it.get_tensor(o["index"]).copy()
    return raw, ((raw.astype(np.float64) - z_out) * s_out).astype(np.float32)


def test_float_in_float_out_matches_manual_quantization(int8_tflite, publisher, device):
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8)).astype(np.float32)
    raw_ref, float_ref = _by_hand(int8_tflite, x)
    package = edgeseal.seal(int8_tflite, publisher=publisher, devices=[device], name="int8")
    with edgeseal.runtime.load(package, key=device, trusted=[publisher.public_key()], raw=True) as model:
        assert model.inputs[0].dtype == "int8"
        runner = FloatIO(model)
        assert runner.quantized_io and runner.inputs[0].dtype == "float32" and runner.outputs[0].dtype == "float32"
        (out,) = runner.run(x).values()
        assert out.dtype == np.float32 and np.array_equal(out, float_ref)
        # int8 given in float mode passes through unchanged
        xq = quantize(x, model.inputs[0])
        assert np.array_equal(next(iter(runner.run(xq).values())), float_ref)
        raw = FloatIO(model, raw=True)
        assert raw.inputs[0].dtype == "int8"
        (out_raw,) = raw.run(xq).values()
        assert out_raw.dtype == np.int8 and np.array_equal(out_raw, raw_ref)
        with pytest.raises(InvalidInput, match="int8"):
            raw.run(x)
        assert np.array_equal(next(iter(model.run(xq).values())), raw_ref)  # raw=True: the integers as they are
    # the Python API's default: float in, float out, with the model's own scales (int8 still passes through)
    with edgeseal.runtime.load(package, key=device, trusted=[publisher.public_key()]) as model:
        assert not model.raw and model.inputs[0].dtype == "float32" and model.outputs[0].dtype == "float32"
        assert model.model_inputs[0].dtype == "int8"  # what the backend runs
        (out,) = model.run(x).values()
        assert out.dtype == np.float32 and np.array_equal(out, float_ref)
        assert np.array_equal(next(iter(model.run(xq).values())), float_ref)
        assert np.array_equal(next(iter(FloatIO(model).run(x).values())), float_ref)  # wrapping again: no-op


def test_float_model_untouched(tflite_model, publisher, device):
    package = edgeseal.seal(tflite_model, publisher=publisher, devices=[device], name="fp32")
    x = np.random.default_rng(2).standard_normal((1, 1, 8, 8)).astype(np.float32)
    with edgeseal.runtime.load(package, key=device, trusted=[publisher.public_key()]) as model:
        runner = FloatIO(model)
        assert not runner.quantized_io and runner.inputs == model.inputs
        assert np.array_equal(next(iter(runner.run(x).values())), next(iter(model.run(x).values())))


def test_cli_run_float_by_default_raw_on_request(int8_tflite, tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 1, 8, 8)).astype(np.float32)
    raw_ref, float_ref = _by_hand(int8_tflite, x)
    (tmp_path / "m.tflite").write_bytes(int8_tflite)
    np.save(tmp_path / "x.npy", x)

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "edgeseal", *args], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "PUB_PW": "pw"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    cli("keygen", "publisher", "-o", "pub")
    cli("keygen", "device", "-o", "dev")
    cli("seal", "m.tflite", "-o", "m.eseal", "--publisher", "pub.pem", "--device", "dev.pub")
    common = ("--key", "dev.pem", "--trusted", "pub.pub")
    cli("run", "m.eseal", *common, "-i", "x.npy", "-o", "y.npz")
    with np.load(tmp_path / "y.npz") as y:
        (out,) = (y[k] for k in y.files)
    assert out.dtype == np.float32 and np.array_equal(out, float_ref)
    from ai_edge_litert.interpreter import Interpreter

    s_in, z_in = Interpreter(model_content=int8_tflite).get_input_details()[0]["quantization"]
    np.save(tmp_path / "xq.npy", np.clip(np.round(x / s_in) + z_in, -128, 127).astype(np.int8))
    printed = json.loads(cli("--json", "run", "m.eseal", *common, "-i", "xq.npy", "--raw").stdout)
    (out_raw,) = printed["outputs"].values()
    assert np.array_equal(np.asarray(out_raw), raw_ref.astype(np.int64))
