"""Digits compression benchmark: runs examples/digits/run.py and writes bench/results/digits_compress.{json,md}.

    python bench/digits_compress.py

Numbers: accuracy on the held-out test split (360 real images), budgets checked on
the validation split; latency p50, batch 1, one thread, this machine.

The distillation section is this file's own study (``distillation_study``): a teacher
trained on an augmented training set, a student with 1/15 of its parameters, and a
long fixed schedule on an augmented transfer set; the example's short-schedule
comparison is kept alongside it as ``distillation_short``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import time
from pathlib import Path

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec = importlib.util.spec_from_file_location("digits_run", ROOT / "examples" / "digits" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t0 = time.time()
    res = mod.run(ROOT / "out" / "digits")
    res["distillation_short"] = res.pop("distillation")
    res["distillation"] = distillation_study()
    res["machine"] = {"cpu": cpu_name(), "python": platform.python_version(), "timing": "batch 1, 1 thread"}
    res["wall_s"] = round(time.time() - t0, 1)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits_compress.json").write_text(json.dumps(res, indent=2, default=float))
    (out / "digits_compress.md").write_text(render(res))
    print(render(res))


# Chosen on the validation split (single-teacher trials of (2, 0.5), (4, 0.5), (4, 0.9), (8, 0.9)).
TEMPERATURE, ALPHA = 4.0, 0.9
STUDENT = {"channels": (8, 16, 32), "hidden": 64}


def distillation_study(*, seeds: int = 8) -> dict:
    """Student alone vs distilled: same init, inputs, epochs, optimizer and lr; only the targets differ.

    The teacher is an ensemble of 3 nets (seeds 0-2) trained on the training set plus 3
    shifted/noisy copies (8 epochs each); its averaged logits are softer than one net's; both students see another 3 augmented copies (the alone arm
    with the true labels of those images) for 12 epochs.
    """
    import copy
    import dataclasses

    import numpy as np
    import torch

    from edgeseal.converters.distill import DistillConfig, distill, ensemble
    from edgeseal.converters.train import TrainConfig, accuracy, fit, predict_logits
    from edgeseal.converters.zoo import DigitsCNN, augment_digits, count_params, load_digits_split, train_digits_cnn

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))  # training only; latency above was timed on one thread
    try:
        d = load_digits_split()
        x_t, y_t = augment_digits(d.x_train, d.y_train, copies=3, seed=0)
        teachers = [
            train_digits_cnn(dataclasses.replace(d, x_train=x_t, y_train=y_t), epochs=8, seed=s, show_progress=False) for s in range(3)
        ]
        teacher = ensemble(teachers)
        xs, ys = augment_digits(d.x_train, d.y_train, copies=3, seed=1)
        acc = lambda m, x, y: round(100 * accuracy(predict_logits(m, x), y), 3)  # noqa: E731
        rows = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            student = DigitsCNN(**STUDENT)
            cfg = TrainConfig(epochs=12, lr=2e-3, seed=seed, show_progress=False)
            alone = fit(copy.deepcopy(student), xs, ys, cfg)
            taught = distill(teacher, copy.deepcopy(student), xs, ys, DistillConfig(temperature=TEMPERATURE, alpha=ALPHA, train=cfg))
            rows.append({
                "seed": seed,
                "alone_val_acc": acc(alone, d.x_val, d.y_val), "distilled_val_acc": acc(taught, d.x_val, d.y_val),
                "alone_test_acc": acc(alone, d.x_test, d.y_test), "distilled_test_acc": acc(taught, d.x_test, d.y_test),
            })
    finally:
        torch.set_num_threads(threads)
    diff = np.array([r["distilled_test_acc"] - r["alone_test_acc"] for r in rows])
    return {
        "temperature": TEMPERATURE, "alpha": ALPHA,
        "teacher_params": count_params(teachers[0]), "student_params": count_params(student),
        "teacher_test_acc": acc(teacher, d.x_test, d.y_test), "teacher_val_acc": acc(teacher, d.x_val, d.y_val),
        "teacher": {"members": len(teachers), "samples": len(x_t), "epochs": 8},
        "samples": len(xs), "epochs": 12, "lr": 2e-3, "seeds": rows,
        "alone_mean": round(float(np.mean([r["alone_test_acc"] for r in rows])), 3),
        "distilled_mean": round(float(np.mean([r["distilled_test_acc"] for r in rows])), 3),
        "test_diff_mean": round(float(diff.mean()), 3),
        "test_diff_std": round(float(diff.std(ddof=1)), 3),
        "seeds_won": int((diff > 0).sum()), "seeds_tied": int((diff == 0).sum()),
    }


def render(r: dict) -> str:
    i8, sp, up, ds = r["int8"], r["structured_pruning"], r["unstructured_pruning"], r["distillation"]
    lines = [
        "# Digits CNN compression (scikit-learn digits, 360 test images)",
        "",
        f"Teacher: {r['teacher']['params']:,} params, test accuracy {r['teacher']['test_acc']:.2f}%.",
        f"Export: ONNX opset {r['export']['onnx']['opset']} max |torch-onnx| {r['export']['onnx']['max_abs_error']:.1e}; "
        f"TFLite max |torch-tflite| {r['export']['tflite']['max_abs_error']:.1e}.",
        "",
        "## int8 (budget 0.5 points, checked on validation)",
        "",
        "| format | fp32 acc | int8 acc | drop | fp32 bytes | int8 bytes | ratio | fp32 p50 ms | int8 p50 ms | kept in float |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in i8.items():
        lines.append(
            f"| {name} | {v['fp32_test_acc']:.2f} | {v['int8_test_acc']:.2f} | {v['acc_drop_points']:.2f} | {v['fp32_bytes']:,} | "
            f"{v['int8_bytes']:,} | {v['size_ratio']:.3f} | {v['fp32_p50_ms']:.4f} | {v['int8_p50_ms']:.4f} | "
            f"{', '.join(v['kept_in_float']) or 'none'} |"
        )
    b, a = sp["before"], sp["after"]
    lines += [
        "",
        f"## Structured pruning ({sp['plan']['channels_removed']:.0%} of channels, fine-tuned 20 epochs with distillation)",
        "",
        "| model | test acc | params | MACs | ONNX bytes | zlib bytes | p50 ms |",
        "|---|---|---|---|---|---|---|",
        f"| original | {b['test_acc']:.2f} | {b['params']:,} | {b['macs']:,} | {b['onnx_bytes']:,} | {b['onnx_zlib_bytes']:,} | {b['latency']['p50_ms']:.4f} |",
        f"| pruned | {a['test_acc']:.2f} | {a['params']:,} | {a['macs']:,} | {a['onnx_bytes']:,} | {a['onnx_zlib_bytes']:,} | {a['latency']['p50_ms']:.4f} |",
        f"| 70% unstructured | {up['after']['test_acc']:.2f} | {up['after']['params']:,} | {up['after']['macs']:,} | "
        f"{up['after']['onnx_bytes']:,} | {up['after']['onnx_zlib_bytes']:,} | {up['after']['latency']['p50_ms']:.4f} |",
        "",
        f"Unstructured: {up['warning'][0] if up['warning'] else ''}",
        "",
        f"## Distillation (student {ds['student_params']:,} params = 1/{ds['teacher_params'] / ds['student_params']:.1f} of one teacher net, "
        f"T={ds['temperature']}, alpha={ds['alpha']}, chosen on validation)",
        "",
        f"Teacher: an ensemble of {ds['teacher']['members']} nets, each trained on {ds['teacher']['samples']:,} augmented images "
        f"for {ds['teacher']['epochs']} epochs "
        f"(test {ds['teacher_test_acc']:.2f}%, val {ds['teacher_val_acc']:.2f}%). Both students: the same init, "
        f"{ds['samples']:,} augmented images (another draw), {ds['epochs']} epochs, Adam lr {ds['lr']}; "
        "the alone arm uses the true labels of those images.",
        "",
        "| seed | alone val | distilled val | alone test | distilled test | test gain |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['seed']} | {s['alone_val_acc']:.2f} | {s['distilled_val_acc']:.2f} | {s['alone_test_acc']:.2f} | "
        f"{s['distilled_test_acc']:.2f} | {s['distilled_test_acc'] - s['alone_test_acc']:+.2f} |"
        for s in ds["seeds"]
    ]
    lines += [
        f"| mean | {_mean(ds['seeds'], 'alone_val_acc'):.2f} | {_mean(ds['seeds'], 'distilled_val_acc'):.2f} | "
        f"{ds['alone_mean']:.2f} | {ds['distilled_mean']:.2f} | {ds['test_diff_mean']:+.2f} |",
        "",
        f"Test gain {ds['test_diff_mean']:+.2f} points (std over seeds {ds['test_diff_std']:.2f}); "
        f"distilled better on {ds['seeds_won']} of {len(ds['seeds'])} seeds, tied on {ds['seeds_tied']}.",
        "",
        "Short schedule (examples/digits/run.py: teacher trained on the plain set, T=4, alpha=0.7): no gain —",
    ]
    for setting in ("plain", "augmented"):
        v = r["distillation_short"][setting]
        lines.append(f"{setting}, {v['samples']:,} samples, {v['epochs']} epochs: alone {v['alone_mean']:.2f}, distilled {v['distilled_mean']:.2f}.")
    lines.append("")
    lines += [f"Sealed int8 ONNX: {r['sealed']['sealed_bytes']:,} bytes, test accuracy through edgeseal.load: {r['sealed']['test_acc']:.2f}%.", ""]
    lines += [f"Machine: {r['machine']}; wall time {r['wall_s']} s.", ""]
    return "\n".join(lines)


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)



if __name__ == "__main__":
    main()
