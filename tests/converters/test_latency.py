"""Model files timed by the one harness: only the backend call is timed, inputs prepared before."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseal.converters.latency import time_side_by_side, timed_call
from edgeseal.runtime.quantio import quantize

pytest.importorskip("torch")


def test_int8_input_is_quantized_before_timing_and_the_call_is_the_backend_run(tflite_int8, small_x):
    from ai_edge_litert.interpreter import Interpreter

    call = timed_call(tflite_int8, small_x[:1])
    (feed,) = call.feeds.values()
    spec = call.runner.backend.inputs[0]
    assert feed.dtype == np.int8 and np.array_equal(feed, quantize(small_x[:1], spec))  # not done per call
    (raw,) = call().values()  # the backend's own output: int8, not dequantized inside the timed call
    it = Interpreter(model_content=tflite_int8)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], feed)
    it.invoke()
    assert raw.dtype == np.int8 and np.array_equal(raw, it.get_tensor(it.get_output_details()[0]["index"]))


def test_side_by_side_names_every_candidate_and_what_was_timed(onnx_fp32, tflite_fp32, tflite_int8, small_x):
    speed = time_side_by_side({"onnx": onnx_fp32, "tflite": tflite_fp32, "int8": tflite_int8}, small_x[:1],
                              baseline="tflite", rounds=3, calls_per_round=4, warmup=2)
    assert set(speed.latency) == {"onnx", "tflite", "int8"} and speed.ratio["tflite"] == 1.0
    for lat in speed.latency.values():
        assert lat.runs == 12 and 0 < lat.p50_ms <= lat.p90_ms <= lat.p95_ms
    assert "batch 1, 1 thread" in speed.timed and "interleaved" in speed.timed
    d = speed.to_dict()
    assert d["baseline"] == "tflite" and set(d["speed_ratio"]) == {"onnx", "tflite", "int8"}
    with pytest.raises(KeyError, match="baseline"):
        time_side_by_side({"a": onnx_fp32}, small_x[:1], baseline="b")


def test_a_list_of_inputs_is_taken_in_turn_alike_by_every_model(onnx_fp32, tflite_int8, small_x):
    from edgeseal.converters.infer import runner_for

    rows = [small_x[i : i + 1] for i in range(3)]
    for model in (onnx_fp32, tflite_int8):
        call = timed_call(model, rows)
        want = [next(iter(runner_for(model, raw=True).run_feeds(f).values())) for f in call.feeds]
        got = [next(iter(call().values())) for _ in range(5)]  # inputs 0, 1, 2, 0, 1
        for k, out in enumerate(got):
            assert np.array_equal(out, want[k % 3])
        assert not np.array_equal(want[0], want[1])  # the inputs do differ: the order is observable
    speed = time_side_by_side({"a": onnx_fp32, "b": onnx_fp32}, rows, baseline="a", rounds=2, calls_per_round=3,
                              warmup=1)
    assert speed.latency["b"].runs == 6 and set(speed.ratios_to("b")) == {"a", "b"}
