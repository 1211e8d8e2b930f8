"""EfficientNet-Lite0: ~30 % of channels pruned (torch-pruning), recovered by distillation from the fp32 teacher.

    python bench/efficientnet_prune_distill.py [--ratio 0.3] [--crops 800] [--epochs 2]
    # writes bench/results/efficientnet_prune_distill.{json,md}

No labels anywhere: the student learns the teacher's soft targets (KL at temperature T, alpha=1)
on augmented crops of the calibration photos; agreement is measured on the evaluation crops of the
other photos (edgeseal.converters.vision). Size is the exported ONNX file; speed is batch 1, one
thread, interleaved with the fp32 teacher's ONNX file.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from _machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--crops", type=int, default=800, help="unlabelled training crops (calibration photos)")
    ap.add_argument("--evaluation", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "efficientnet_prune_distill"))
    args = ap.parse_args()

    import torch

    from edgeseal.converters.distill import DistillConfig, distill
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.prune import StructuredPruneConfig, prune_structured
    from edgeseal.converters.train import TrainConfig
    from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set, load_efficientnet_lite0
    from edgeseal.runtime.fidelity import fidelity

    t_start = time.time()
    torch.manual_seed(0)
    train_x = crop_set(CALIBRATION_PHOTOS, args.crops, seed=3)
    evaluation = crop_set(EVALUATION_PHOTOS, args.evaluation, seed=2)
    teacher = load_efficientnet_lite0()
    with torch.no_grad():
        train_y = np.concatenate([teacher(torch.as_tensor(train_x[i : i + 64])).argmax(1).numpy()
                                  for i in range(0, len(train_x), 64)])
    fp32 = export_onnx(teacher, evaluation[:4], ExportConfig(opset=17, check_samples=4)).model
    ref = runner_for(fp32).run_batched(evaluation, 32)

    student, plan = prune_structured(copy.deepcopy(teacher), evaluation[:1], StructuredPruneConfig(ratio=args.ratio))
    pruned = export_onnx(student, evaluation[:4], ExportConfig(opset=17, check_samples=4)).model
    before = fidelity(ref, runner_for(pruned).run_batched(evaluation, 32))
    print(f"pruned {args.ratio:.0%}: params {plan.params_before:,} -> {plan.params_after:,}; {before.summary()}", flush=True)

    t = time.time()
    student.train()
    student = distill(teacher, student, train_x, train_y, DistillConfig(
        temperature=2.0, alpha=1.0, train=TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=32, device="cpu",
                                                      show_progress=False)))
    distill_s = time.time() - t
    distilled = export_onnx(student.eval(), evaluation[:4], ExportConfig(opset=17, check_samples=4)).model
    after = fidelity(ref, runner_for(distilled).run_batched(evaluation, 32))
    print(f"distilled ({args.epochs} epochs on {len(train_x)} crops, {distill_s:.0f} s): {after.summary()}", flush=True)

    from edgeseal.converters.latency import time_side_by_side

    speed = time_side_by_side({"fp32": fp32, "pruned_distilled": distilled}, evaluation[:1], baseline="fp32",
                              rounds=15, calls_per_round=10, warmup=5)
    p50 = {k: v.p50_ms for k, v in speed.latency.items()}
    result = {
        "model": "EfficientNet-Lite0 (ImageNet-pretrained), structured channel pruning with torch-pruning (L2 group importance)",
        "ratio": args.ratio, "params_before": plan.params_before, "params_after": plan.params_after,
        "macs_before": plan.macs_before, "macs_after": plan.macs_after,
        "onnx_bytes": {"fp32": len(fp32), "pruned": len(distilled)},
        "training": {"crops": len(train_x), "photos": list(CALIBRATION_PHOTOS), "epochs": args.epochs, "lr": args.lr,
                     "loss": "KL to the teacher's soft targets at T=2 (alpha=1: no labels)", "seconds": round(distill_s, 1)},
        "evaluation": {"crops": len(evaluation), "photos": list(EVALUATION_PHOTOS)},
        "fidelity_pruned_before_distillation": before.to_dict(),
        "fidelity_after_distillation": after.to_dict(),
        "p50_ms": p50, "speedup": speed.ratio["pruned_distilled"],
        "timing": f"{speed.timed}; {speed.rounds} rounds x {speed.calls_per_round} calls; shared 2-core machine",
        "cpu": cpu_name(), "wall_s": round(time.time() - t_start, 1),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    md = [
        "# EfficientNet-Lite0: structured pruning + distillation without labels",
        "",
        f"{result['model']}; {args.ratio:.0%} of channels per layer; params {plan.params_before:,} -> "
        f"{plan.params_after:,}, MACs {plan.macs_before:,} -> {plan.macs_after:,}; ONNX {len(fp32) / 1e6:.2f} MB -> "
        f"{len(distilled) / 1e6:.2f} MB.",
        f"Distillation: {result['training']['loss']}, {args.epochs} epochs over {len(train_x)} crops of the calibration "
        f"photos, Adam lr {args.lr}, {distill_s:.0f} s on the CPU. Evaluation: {len(evaluation)} crops of other photos.",
        "",
        "| | top-1 agreement with fp32 | top-5 overlap | logit SQNR dB |",
        "|---|---|---|---|",
        f"| pruned, before distillation | {before.top1_agreement:.1%} | {before.top5_overlap:.1%} | {before.sqnr_db:.1f} |",
        f"| pruned + distilled | {after.top1_agreement:.1%} | {after.top5_overlap:.1%} | {after.sqnr_db:.1f} |",
        "",
        f"Speed (batch 1, one thread, interleaved, {cpu_name()}, shared machine): fp32 {p50['fp32']:.1f} ms, pruned "
        f"{p50['pruned_distilled']:.1f} ms ({result['speedup']:.2f}x).",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
