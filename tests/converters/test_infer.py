"""One way to run a model on the host: the runners, the audit artifacts and a sealed package answer bit for bit alike.

The runners (``converters.infer``) and the audit artifacts are thin layers over the runtime's backend
sessions and ``runtime.quantio``; ``edgeseal.runtime.load`` runs the same backends on a device. The
independent reference here is plain ONNX Runtime / LiteRT driven by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal
from edgeseal.audit.artifacts import OnnxArtifact, TFLiteArtifact
from edgeseal.converters.infer import OnnxRunner, TfliteRunner, runner_for
from edgeseal.runtime.errors import InvalidInput
from edgeseal.runtime.quantio import quantize

torch = pytest.importorskip("torch")


@pytest.fixture()
def x(small_x):
    return small_x


@pytest.fixture(scope="module")
def keys():
    return edgeseal.generate_publisher_key(), edgeseal.generate_device_key()


def _sealed_rows(model: bytes, x: np.ndarray, keys) -> np.ndarray:
    """The first output of ``edgeseal.runtime.load`` on the sealed model, one row at a time (its own batch)."""
    publisher, device = keys
    package = edgeseal.seal(model, publisher=publisher, devices=[device], name="m")
    with edgeseal.runtime.load(package, key=device, trusted=[publisher.public_key()]) as sealed:
        return np.concatenate([next(iter(sealed.run(x[i : i + 1]).values())) for i in range(len(x))])


def _litert_by_hand(model: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain LiteRT, row by row: quantize with the input's own scale (round half to even, then + zero point),
    invoke, dequantize with the output's scale. Returns (raw outputs, float outputs)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    raws = []
    for row in x:
        v = row[None]
        if i["dtype"] != np.float32:
            s, z = i["quantization"]
            v = np.clip(np.round(v.astype(np.float64) / s) + z, -128, 127).astype(i["dtype"])
        it.set_tensor(i["index"], v)
        it.invoke()
        raws.append(it.get_tensor(o["index"]).copy())
    raw = np.concatenate(raws)
    if o["dtype"] == np.float32:
        return raw, raw
    s, z = o["quantization"]
    return raw, (s * (raw.astype(np.float64) - z)).astype(np.float32)


def test_onnx_fp32_runner_artifact_sealed_and_plain_ort_agree_bit_for_bit(onnx_fp32, x, keys):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    plain = ort.InferenceSession(onnx_fp32, opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    runner = runner_for(onnx_fp32)
    assert isinstance(runner, OnnxRunner) and runner.input_shape == (None, 1, 8, 8)
    got = runner.run(x)
    assert got.dtype == np.float32 and np.array_equal(got, plain)
    assert np.array_equal(runner.run_batched(x, 5), plain)  # split in batches of 5: same numbers
    art = OnnxArtifact(name="fp32", kind="fp32", model=onnx_fp32).predict(x)
    assert art.dtype == np.float64 and np.array_equal(art, plain.astype(np.float64))
    assert np.array_equal(_sealed_rows(onnx_fp32, x, keys), plain)


def test_tflite_fp32_runner_artifact_sealed_and_plain_litert_agree_bit_for_bit(tflite_fp32, x, keys):
    _, plain = _litert_by_hand(tflite_fp32, x)
    runner = runner_for(tflite_fp32)
    assert isinstance(runner, TfliteRunner) and runner.input_shape == (1, 1, 8, 8) and runner.input_dtype == "float32"
    assert np.array_equal(runner.run_batched(x), plain)  # 12 rows through a batch-1 model, row by row
    art = TFLiteArtifact(name="fp32", kind="fp32", model=tflite_fp32)
    assert np.array_equal(art.predict(x), plain.astype(np.float64))
    assert np.array_equal(_sealed_rows(tflite_fp32, x, keys), plain)


def test_tflite_int8_runner_artifact_sealed_and_plain_litert_agree_bit_for_bit(tflite_int8, x, keys):
    raw_ref, plain = _litert_by_hand(tflite_int8, x)
    runner = runner_for(tflite_int8)
    assert runner.input_dtype == "int8" and runner.output_dtype == "int8"  # full integer, I/O included
    got = runner.run_batched(x)
    assert got.dtype == np.float32 and np.array_equal(got, plain)
    art = TFLiteArtifact(name="int8", kind="int8", model=tflite_int8)
    assert np.array_equal(art.predict(x), plain.astype(np.float64))
    assert np.array_equal(_sealed_rows(tflite_int8, x, keys), plain)
    raw = runner_for(tflite_int8, raw=True)  # raw: the integers as the model takes and returns them
    xq = quantize(x, runner.backend.inputs[0])
    assert np.array_equal(raw.run_batched(xq), raw_ref)
    with pytest.raises(InvalidInput, match="int8"):
        raw.run(x[:1])  # float given to a raw int8 input is refused, not truncated


def test_one_rounding_for_float_inputs_of_int8_models(tflite_int8):
    """Inputs next to the halfway points between int8 steps, where rounding rules part ways: the old runner
    divided in float32, the old artifact rounded ``x/s + z``; the runner and the artifact now both use
    ``runtime.quantio.quantize`` (float64, ``round(x/s) + z``, half to even), as the sealed runtime does."""
    from edgeseal.runtime.quantio import dequantize

    runner = TfliteRunner(tflite_int8)
    spec, out_spec = runner.backend.inputs[0], runner.backend.outputs[0]
    (s,), (z,) = spec.quant.scale, spec.quant.zero_point
    steps = (np.arange(-40, 40) + 0.5).reshape(80, 1, 1, 1)
    x = np.broadcast_to(steps * s, (80, 1, 8, 8)).astype(np.float32)
    rule = np.clip(np.round(x.astype(np.float64) / s) + z, -128, 127)
    old_runner = np.clip(np.round(x / np.float32(s)) + z, -128, 127)  # float32 arithmetic
    old_artifact = np.clip(np.round(x / np.float32(s) + np.float32(z)), -128, 127)
    assert np.any(rule != old_runner) and np.any(rule != old_artifact)  # this input tells the rules apart
    xq = quantize(x, spec)
    assert np.array_equal(xq, rule.astype(np.int8))
    want = dequantize(runner_for(tflite_int8, raw=True).run_batched(xq), out_spec)
    assert np.array_equal(runner.run_batched(x), want)
    assert np.array_equal(TFLiteArtifact(name="int8", kind="int8", model=tflite_int8).predict(x),
                          want.astype(np.float64))


def test_fixed_batch_tflite_refuses_a_resize_with_a_clear_error_and_keeps_working(tflite_fp32, x):
    runner = TfliteRunner(tflite_fp32)
    with pytest.raises(InvalidInput, match=r"cannot run input .* at shape \(12, 1, 8, 8\).*runs at \(1, 1, 8, 8\)"):
        runner.run(x)  # the converted graph reshapes to a fixed (1, 256)
    _, plain = _litert_by_hand(tflite_fp32, x)
    assert np.array_equal(runner.run(x[:1]), plain[:1])  # back at its own shape after the refusal
    assert np.array_equal(runner.run_all(x), plain)  # run_all falls back to the model's own batch


def test_a_model_without_inputs_is_refused_by_name():
    from onnx import TensorProto, helper

    from edgeseal.runtime.errors import UnsupportedError

    node = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0]))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    with pytest.raises(UnsupportedError, match="no required input"):
        OnnxRunner(model.SerializeToString())
