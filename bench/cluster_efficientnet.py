"""EfficientNet-Lite0 weight clustering: encoded size vs fp32 ONNX at top-1 agreement with fp32, one run.

    python bench/cluster_efficientnet.py [--evaluation 200] [--selection 100]
    # writes bench/results/cluster_efficientnet.{json,md}

Model: pretrained EfficientNet-Lite0 (ImageNet; edgeseal.converters.vision.load_efficientnet_lite0),
exported to ONNX (batch-norm folded into the convolutions). Data: deterministic augmented crops of
the photographs bundled with scikit-image — selection crops (cluster widths, the budget) from the
calibration photos, evaluation crops from the other photos. No labels: top-1 agreement with the fp32
model. Clustering is done on the exported graph, per output channel (the folded batch-norm scales
differ per channel), with no fine-tuning (no labelled ImageNet data here).

``encoded_bytes`` = codebook records + zlib graph (NOT a sealed package; see cluster_digits.md).
``sealed_zlib_bytes`` = the clustered ONNX file in a real sealed package with zlib (what works today).
The machine was shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path


from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
GOAL_AGREEMENT = 97.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluation", type=int, default=200)
    ap.add_argument("--selection", type=int, default=100)
    ap.add_argument("--probe", type=int, default=16)
    ap.add_argument("--max-drop", type=float, default=1.5, help="agreement points on the selection crops")
    args = ap.parse_args()
    import edgeseal
    from edgeseal.converters import cluster as cl
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set, load_efficientnet_lite0

    warnings.simplefilter("ignore")
    t_start = time.time()
    selection = crop_set(CALIBRATION_PHOTOS, args.selection, seed=1)
    evaluation = crop_set(EVALUATION_PHOTOS, args.evaluation, seed=2)
    fp32 = export_onnx(load_efficientnet_lite0(), evaluation[:8], ExportConfig(opset=17, check_samples=8)).model
    ref_sel = runner_for(fp32).run_batched(selection, 32).argmax(-1)
    ref_eval = runner_for(fp32).run_batched(evaluation, 32).argmax(-1)
    agree = lambda m, x, r: 100 * float((runner_for(m).run_batched(x, 32).argmax(-1) == r).mean())  # noqa: E731
    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    result: dict = {"fp32_onnx_bytes": len(fp32), "variants": {}}
    for per_channel in (True,):
        t0 = time.time()
        cfg = cl.ClusterConfig(max_drop=args.max_drop, bits=(2, 3, 4, 5, 6, 8), per_channel=per_channel,
                               probe_samples=args.probe, min_params=256)
        model, report, _ = cl.cluster_onnx(fp32, selection, lambda m: agree(m, selection, ref_sel), cfg,
                                           reference_score=100.0)
        size = cl.encoded_size(model)[0]
        sealed = len(edgeseal.seal(model, publisher=publisher, devices=[device.public_key()], compression="zlib",
                                   now=1_700_000_000.0))
        name = "cluster_per_channel" if per_channel else "cluster_per_tensor"
        v = {"encoded_bytes": size.total, "encoded": size.to_dict(), "sealed_zlib_bytes": sealed,
             "ratio_encoded_vs_fp32": len(fp32) / size.total, "ratio_sealed_vs_fp32": len(fp32) / sealed,
             "selection_agreement": report.score, "evaluation_agreement": agree(model, evaluation, ref_eval),
             "clustering": report.to_dict(), "seconds": round(time.time() - t0, 1)}
        v["goal"] = {"encoded<=fp32/8": size.total <= len(fp32) / 8, f"agreement>={GOAL_AGREEMENT}":
                     v["evaluation_agreement"] >= GOAL_AGREEMENT}
        result["variants"][name] = v
        print(name, size.total, sealed, v["evaluation_agreement"], flush=True)
    result.update(data={"selection_crops": len(selection), "evaluation_crops": len(evaluation),
                        "selection_photos": list(CALIBRATION_PHOTOS), "evaluation_photos": list(EVALUATION_PHOTOS)},
                  machine={"cpu": cpu_name(), "python": platform.python_version(), "shared": True},
                  wall_s=round(time.time() - t_start, 1))
    out = ROOT / "bench" / "results"
    (out / "cluster_efficientnet.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "cluster_efficientnet.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    lines = ["# EfficientNet-Lite0: weight clustering", "",
             f"fp32 ONNX {r['fp32_onnx_bytes']:,} bytes; goal: <= 1/8 ({r['fp32_onnx_bytes'] / 8:,.0f} bytes) at >= "
             f"{GOAL_AGREEMENT:g} % top-1 agreement with fp32 on {r['data']['evaluation_crops']} held-out crops "
             f"(widths chosen on {r['data']['selection_crops']} other crops).", "",
             "| variant | encoded bytes | fp32 / encoded | sealed today (ONNX, zlib) | fp32 / sealed | selection agr. % | "
             "evaluation agr. % |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['encoded_bytes']:,} | {v['ratio_encoded_vs_fp32']:.2f} | {v['sealed_zlib_bytes']:,} | "
                     f"{v['ratio_sealed_vs_fp32']:.2f} | {v['selection_agreement']:.2f} | {v['evaluation_agreement']:.2f} |")
    for name, v in r["variants"].items():
        widths: dict[int, int] = {}
        for layer in v["clustering"]["layers"]:
            widths[layer["bits"]] = widths.get(layer["bits"], 0) + layer["params"]
        lines += ["", f"{name}: parameters per index width: " + ", ".join(f"{b} bits: {n:,}" for b, n in sorted(widths.items()))
                  + f"; goals: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in v["goal"].items())]
    lines += ["", f"Machine: {r['machine']['cpu']} (shared). Wall {r['wall_s']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
