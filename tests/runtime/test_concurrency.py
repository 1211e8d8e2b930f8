"""Eight threads running one loaded model at once get the single-threaded answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgeseal


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_eight_threads_identical_results(fmt, onnx_model, tflite_model, publisher, device):
    model_bytes = onnx_model if fmt == "onnx" else tflite_model
    model = edgeseal.load(edgeseal.seal(model_bytes, publisher=publisher, devices=[device]), key=device,
                          trusted=[publisher])
    spec = model.inputs[0]
    shape = tuple(d if d is not None else 3 for d in spec.shape)
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal(shape).astype(np.float32) for _ in range(16)]
    expected = [model.run(b) for b in batches]

    def worker(seed: int) -> int:
        order = np.random.default_rng(seed).permutation(len(batches))
        for _ in range(5):
            for i in order:
                got = model.run(batches[i])
                for name, value in expected[i].items():
                    np.testing.assert_array_equal(got[name], value)
        return len(order) * 5

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(worker, range(8)))
    assert done == [80] * 8
    model.close()
