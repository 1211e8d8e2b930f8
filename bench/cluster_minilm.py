"""all-MiniLM-L6-v2 with k-means codebooks (onnx+codebook) instead of int4: sealed size and cosine, one run.

    python bench/cluster_minilm.py        # writes bench/results/cluster_minilm.{json,md}

Same model, sentences and split as bench/int4_minilm.py. Every weight MatMul and the embedding tables
are clustered per tensor; widths (4..8 bits) are chosen per tensor by converters.cluster.cluster_onnx
so that the mean cosine to fp32 on the 57 calibration sentences stays >= each of TARGETS; each result is judged on
the 200 evaluation sentences and sealed as a real onnx+codebook package (zlib). At load the weights are
decoded back to float32, so it runs at fp32 speed: this trades run-time memory and speed for bytes shipped.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from pathlib import Path

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)
from _minilm import embed, setup

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (0.994, 0.991)


def main() -> None:
    import edgeseal
    from edgeseal.converters import cluster as cl
    from edgeseal.converters.quantize import preprocess_onnx
    from edgeseal.converters.text import cosine_fidelity

    warnings.simplefilter("ignore")
    t_start = time.time()
    evaluation, calibration, fp32, _, fe, fc = setup(export_samples=8)

    ref_c = embed(fp32, fc)
    score = lambda m: float(cosine_fidelity(ref_c, embed(m, fc)).mean())  # noqa: E731
    pp = preprocess_onnx(fp32)
    ref_e = embed(fp32, fe)
    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    runs = {}
    for target in TARGETS:  # calibration mean cosine each run must keep
        t0 = time.time()
        cfg = cl.ClusterConfig(bits=(4, 5, 6, 7, 8), max_drop=1 - target, per_channel=False, min_params=4096,
                               probe_samples=8)
        clustered, report, _ = cl.cluster_onnx(pp, fc, score, cfg, reference_score=1.0)
        sealed = edgeseal.seal(cl.codebook_model(clustered), publisher=publisher, devices=[device.public_key()],
                               compression="zlib")
        loaded = edgeseal.load(sealed, key=device, trusted=[publisher.public_key()])
        try:
            import numpy as np

            got = np.concatenate([loaded.run(f)[loaded.outputs[0].name] for f in fe])
        finally:
            loaded.close()
        cos = cosine_fidelity(ref_e, got)
        widths: dict[int, int] = {}
        for layer in report.layers:
            widths[layer.bits] = widths.get(layer.bits, 0) + layer.params
        runs[f"calibration>={target}"] = {
            "sealed_bytes": len(sealed), "ratio_vs_fp32": len(fp32) / len(sealed), "mean_cos": float(cos.mean()),
            "min_cos": float(cos.min()), "calibration_mean_cos": report.score, "params_per_width": widths,
            "clustering": report.to_dict(), "seconds": round(time.time() - t0, 1),
            "goal": {"sealed<=fp32/8": len(sealed) <= len(fp32) / 8, "mean_cos>=0.99": float(cos.mean()) >= 0.99}}
        print(target, len(sealed), float(cos.mean()), flush=True)
    res = {"fp32_bytes": len(fp32), "limit_bytes_fp32_over_8": len(fp32) / 8, "runs": runs,
           "machine": {"cpu": cpu_name(), "python": platform.python_version(), "shared": True},
           "wall_s": round(time.time() - t_start, 1)}
    out = ROOT / "bench" / "results"
    (out / "cluster_minilm.json").write_text(json.dumps(res, indent=2, default=float))
    lines = ["# MiniLM with codebooks (onnx+codebook)", "",
             f"fp32 ONNX {len(fp32):,} bytes; goal: sealed <= {len(fp32) / 8:,.0f} bytes at mean cosine >= 0.99 on the 200 "
             "evaluation sentences (widths chosen on the 57 calibration sentences). Decoded to float32 at load (fp32 "
             "speed and memory). Shared machine.", "",
             "| calibration target | sealed bytes | fp32 / sealed | eval mean cos | eval min cos | params per width | goals |",
             "|---|---:|---:|---:|---:|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['sealed_bytes']:,} | {r['ratio_vs_fp32']:.2f} | {r['mean_cos']:.5f} | {r['min_cos']:.5f} | "
                     f"{r['params_per_width']} | {', '.join(k + (' met' if ok else ' NOT met') for k, ok in r['goal'].items())} |")
    md = "\n".join(lines + ["", f"Wall {res['wall_s']} s."]) + "\n"
    (out / "cluster_minilm.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
