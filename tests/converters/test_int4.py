"""int4 block-wise weight-only quantization with ONNX Runtime's n-bit quantizer, and its budget loop."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgeseal.converters import int4  # noqa: E402
from edgeseal.runtime.errors import ConfigError, UnsupportedError  # noqa: E402


def _model(outlier: float = 1.0) -> bytes:
    """Embedding table -> MatMul -> Relu -> MatMul; ``outlier`` scales one row of the second weight."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(64, 128)).astype(np.float32)
    w2 = (rng.normal(size=(128, 32)) * 0.1).astype(np.float32)
    w2[5] *= outlier
    emb = rng.normal(size=(100, 64)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["x"], name="gather"),
             helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"), helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 32])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                           numpy_helper.from_array(emb, "emb")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


FEEDS = [{"ids": np.random.default_rng(i).integers(0, 100, size=(4, 8))} for i in range(3)]


def _outputs(model: bytes) -> np.ndarray:
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, f)[0].reshape(-1, 32) for f in FEEDS])


def _cosine(ref: bytes):
    r = _outputs(ref)

    def score(model: bytes) -> float:
        o = _outputs(model)
        return float((np.sum(o * r, 1) / np.linalg.norm(o, axis=1) / np.linalg.norm(r, axis=1)).mean())

    return score


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


@pytest.mark.parametrize("algorithm", ["rtn", "hqq"])
def test_int4_rewrites_matmuls_and_embeddings(algorithm: str) -> None:
    fp32 = _model()
    q = int4.quantize_onnx_int4(fp32, int4.Int4Config(algorithm=algorithm, block_size=32))
    assert _ops(q) == ["GatherBlockQuantized", "MatMulNBits", "Relu", "MatMulNBits"]
    # 4-bit weights plus one scale per 32 values: well under a quarter of the float file
    assert len(q) < len(fp32) / 4
    assert _cosine(fp32)(q) > 0.9
    # the MatMulNBits weights really are 4-bit: two per byte, blocks of 32 rows
    g = onnx.load_from_string(q).graph
    node = next(n for n in g.node if n.name.startswith("mm1"))
    attrs = {a.name: a.i for a in node.attribute}
    assert attrs["bits"] == 4 and attrs["block_size"] == 32 and attrs["K"] == 64 and attrs["N"] == 128
    packed = next(i for i in g.initializer if i.name == node.input[1])
    assert tuple(packed.dims) == (128, 2, 16)  # N, K / block, block / 2 bytes


def _noise_alone(fp32: bytes, node: str) -> float:
    """Output noise power / signal power with only ``node`` in int4 (no embedding table), measured here."""
    other = tuple(n for n in ("mm1", "mm2") if n != node)
    q = int4.quantize_onnx_int4(fp32, int4.Int4Config(embeddings=False, exclude_nodes=other))
    r, o = _outputs(fp32).astype(np.float64), _outputs(q).astype(np.float64)
    return float(np.sum((o - r) ** 2) / np.sum(r ** 2))


def test_budget_loop_moves_the_most_sensitive_matmul_to_int8() -> None:
    fp32 = _model(outlier=40.0)
    score = _cosine(fp32)
    all_int4 = score(int4.quantize_onnx_int4(fp32))
    noise = {n: _noise_alone(fp32, n) for n in ("mm1", "mm2")}
    top = max(noise, key=noise.get)
    with_top_int8 = score(int4.quantize_onnx_int4(fp32, int8_nodes=[top]))
    assert with_top_int8 > all_int4
    budget = 1 - (all_int4 + with_top_int8) / 2  # all-int4 misses it, the most sensitive one in int8 meets it
    out, report = int4.int4_within_budget(fp32, score=score, max_drop=budget, probe=FEEDS)
    assert report.steps[0].score == pytest.approx(all_int4) and not report.steps[0].fallback_nodes
    for n in noise:  # the loop's sensitivities are the noise measured independently
        assert report.sensitivity[n] == pytest.approx(noise[n], rel=1e-3)
    assert report.steps[1].fallback_nodes == (top,) and len(report.steps) == 2
    assert report.met and report.excluded == (top,)
    assert report.chosen_step.score == pytest.approx(score(out)) == pytest.approx(with_top_int8)
    assert "MatMulInteger" in _ops(out) and _ops(out).count("MatMulNBits") == 1
    assert report.chosen_step.size_bytes == len(out)


def test_budget_loop_fallback_float_and_unmet_budget() -> None:
    fp32 = _model(outlier=40.0)
    out, report = int4.int4_within_budget(fp32, score=_cosine(fp32), max_drop=0.0, probe=FEEDS, fallback="float",
                                          max_fallback=2)
    assert not report.met  # the embedding table stays int4: exact equality with float is out of reach
    ranked = tuple(sorted(report.sensitivity, key=lambda n: -report.sensitivity[n]))
    assert [s.fallback_nodes for s in report.steps] == [(), ranked[:1], ranked]
    assert report.chosen == max(range(3), key=lambda i: report.steps[i].score)
    assert _ops(out).count("MatMulNBits") == 3 - len(report.excluded) - 1


def test_config_and_unsupported_requests() -> None:
    with pytest.raises(ConfigError, match="block_size=48 must be a power of two"):
        int4.Int4Config(block_size=48)
    with pytest.raises(ConfigError, match="algorithm='awq'"):
        int4.Int4Config(algorithm="awq")
    with pytest.raises(UnsupportedError, match="neural-compressor"):
        int4.quantize_onnx_int4(_model(), int4.Int4Config(algorithm="gptq"))
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(UnsupportedError, match="no MatMul with a constant float32 weight"):
        int4.int4_within_budget(helper.make_model(g).SerializeToString(), score=lambda b: 1.0, max_drop=0, probe=[])
