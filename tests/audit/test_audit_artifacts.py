import numpy as np
import pytest

from edgeseal.audit.artifacts import Artifact, SealedArtifact, TFLiteArtifact, TorchArtifact
from edgeseal.runtime.errors import ConfigError, InvalidPackage


def test_every_adapter_answers_like_the_torch_reference(digits_linear, digits_artifacts):
    ds, split, _ = digits_linear
    x = ds.x[split.nonmembers][:300]
    ref = digits_artifacts["fp32"].predict(x)
    assert ref.shape == (300, 10) and ref.dtype == np.float64
    np.testing.assert_allclose(digits_artifacts["fp32_onnx"].predict(x), ref, atol=1e-4)
    q, s = digits_artifacts["int8"].predict(x), digits_artifacts["int8_sealed"].predict(x)
    np.testing.assert_array_equal(q, s)  # the sealed package runs the very same int8 model
    assert np.abs(q - ref).max() > 0  # quantized: not the float model
    # Close within what int8 can represent: the error bound follows from the model's own scales,
    # and outputs beyond the calibrated output range are clipped by design.
    lo, hi, bound = _qdq_linear_error_bound(digits_artifacts["int8_bytes"], x)
    err = np.abs(q - np.clip(ref, lo, hi))
    assert (err <= bound + 1e-5).all(), f"max excess {np.max(err - bound):.4f} over the int8 error bound"
    assert np.mean((ref < lo) | (ref > hi)) < 0.01  # calibration covered (almost) every held-out logit
    assert np.mean(q.argmax(1) == ref.argmax(1)) > 0.97
    for a in digits_artifacts.values():
        if not isinstance(a, bytes):
            assert isinstance(a, Artifact)


def _qdq_linear_error_bound(int8_model: bytes, x: np.ndarray):
    """Worst-case |int8 - fp32| of a QDQ Gemm, per sample and output, from the scales in the graph.

    y = x W^T + b with x, W, b and y each rounded to their int8 grid:
    |x'W'^T - xW^T| <= sum_i |x'_i| s_w/2 + sum_i |W_i| s_x/2, plus s_b/2 for the bias, plus one output step
    (s_y: the kernel's requantization rounds once more than the float reference does).
    Returns the representable output range (lo, hi) and the bound.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(int8_model).graph
    raw = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    init = {name: a.astype(np.float64) for name, a in raw.items()}
    (gemm,) = [n for n in graph.node if n.op_type == "Gemm"]
    producers = {o: n for n in graph.node for o in n.output}
    x_dq, w_dq, b_dq = (producers[name] for name in gemm.input)
    (y_q,) = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == gemm.output[0]]
    s_x, s_w, s_b, s_y = (init[n.input[1]] for n in (x_dq, w_dq, b_dq, y_q))
    w = (init[w_dq.input[0]] - init[w_dq.input[2]][:, None]) * s_w[:, None]
    x_range, y_range = (np.iinfo(raw[n.input[2]].dtype) for n in (x_dq, y_q))
    zp_x, zp_y = init[x_dq.input[2]], init[y_q.input[2]]
    x_hat = (np.clip(np.round(x / s_x) + zp_x, x_range.min, x_range.max) - zp_x) * s_x
    bound = np.abs(x_hat).sum(1, keepdims=True) * s_w / 2 + np.abs(w).sum(1) * s_x / 2 + s_b / 2 + s_y
    return (y_range.min - zp_y) * s_y, (y_range.max - zp_y) * s_y, bound


def test_sealed_artifact_is_really_sealed(digits_artifacts):
    art = digits_artifacts["int8_sealed"]
    assert isinstance(art, SealedArtifact) and art.metadata["sealed"] is True
    assert art.package[:8] != digits_artifacts["int8_bytes"][:8]
    assert digits_artifacts["int8_bytes"] not in art.package  # ciphertext, not the model
    assert art.size_bytes == len(digits_artifacts["int8_bytes"])
    assert art.metadata["package_bytes"] == len(art.package) > art.size_bytes
    with pytest.raises(InvalidPackage):  # a different publisher is not trusted
        from edgeseal.runtime.keys import generate_publisher_key

        SealedArtifact(name="x", kind="int8", package=art.package,
                       load_options={**art.load_options, "trusted": [generate_publisher_key().public_key()]})


def test_queries_are_counted_and_batches_split(digits_linear, digits_artifacts):
    ds, split, lin = digits_linear
    art = TorchArtifact(name="fp32", kind="fp32", module=lin, batch_limit=7)
    out = art.predict(ds.x[:20])
    assert art.queries == 20 and out.shape == (20, 10)
    np.testing.assert_allclose(out, digits_artifacts["fp32"].predict(ds.x[:20]), atol=1e-6)
    with pytest.raises(ConfigError, match="batch-first"):
        art.predict(ds.x[0])


def test_tflite_adapter_resizes_the_batch(digits_linear):
    litert_torch = pytest.importorskip("litert_torch")
    import torch

    ds, _, lin = digits_linear
    tfl = litert_torch.convert(lin, (torch.zeros(1, 64),)).model_content()
    art = TFLiteArtifact(name="tflite", kind="fp32", model=tfl)
    for n in (1, 33, 5):
        np.testing.assert_allclose(art.predict(ds.x[:n]), TorchArtifact(name="t", kind="fp32", module=lin).predict(ds.x[:n]),
                                   atol=1e-4)
    assert art.queries == 39 and art.size_bytes == len(tfl)
