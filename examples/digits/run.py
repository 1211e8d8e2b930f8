"""Digits end to end: train a CNN, export ONNX + TFLite, int8 both, prune, distill, seal.

    python examples/digits/run.py [--out out/digits] [--json results.json]

Real data (scikit-learn's 8x8 digits, fixed train/val/test split), everything
built in code. Budgets are checked on the validation split; the numbers
reported are on the held-out test split. Latency: batch 1, one thread, this
machine, p50 over 300 runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
import zlib
from pathlib import Path

import numpy as np


def _acc(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from edgeseal.converters.infer import runner_for

    return round(100.0 * float((runner_for(model_bytes).run_batched(x).argmax(-1) == y).mean()), 3)


def _speed(models: dict[str, bytes], x1: np.ndarray, baseline: str):
    """The models timed side by side in one run (the one harness: interleaved turns, ratios to ``baseline``)."""
    from edgeseal.converters.latency import time_side_by_side

    return time_side_by_side(models, x1, baseline=baseline, rounds=30, calls_per_round=10, warmup=30)


def run(out: Path, *, seeds: int = 5) -> dict:
    import torch

    from edgeseal.converters.distill import DistillConfig, distill
    from edgeseal.converters.export import export_onnx, export_tflite
    from edgeseal.converters.localize import quantize_within_budget, tflite_within_budget
    from edgeseal.converters.prune import (
        SparsityWarning,
        StructuredPruneConfig,
        UnstructuredPruneConfig,
        measure,
        prune_structured,
        prune_unstructured,
        sparsity,
    )
    from edgeseal.converters.quantize import OnnxStaticConfig
    from edgeseal.converters.train import TrainConfig, accuracy, fit, predict_logits
    from edgeseal.converters.zoo import DigitsCNN, count_params, load_digits_split, train_digits_cnn

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    d = load_digits_split()
    x1 = d.x_test[:1]
    res: dict = {"data": {"train": len(d.x_train), "val": len(d.x_val), "test": len(d.x_test)}}

    # 1. teacher
    t0 = time.time()
    teacher = train_digits_cnn(d, epochs=15, seed=0)
    res["teacher"] = {"params": count_params(teacher), "train_s": round(time.time() - t0, 1),
                      "test_acc": round(100 * accuracy(predict_logits(teacher, d.x_test), d.y_test), 3)}

    # 2. export both formats, checked against torch
    onnx_fp32 = export_onnx(teacher, d.x_test)
    tfl_fp32 = export_tflite(teacher, d.x_test)
    res["export"] = {"onnx": onnx_fp32.to_dict(), "tflite": tfl_fp32.to_dict()}

    # 3. int8, budget 0.5 points on the validation split
    val = lambda m: 100.0 * float(np.mean(_runner_argmax(m, d.x_val) == d.y_val))  # noqa: E731
    onnx_int8, qrep = quantize_within_budget(
        onnx_fp32.model, OnnxStaticConfig(calibration="minmax"), score=val, max_drop=0.5,
        calibration=d.x_train, metric="val accuracy (points)",
    )
    tfl_int8, trep = tflite_within_budget(tfl_fp32.model, d.x_train, score=val, max_drop=0.5, metric="val accuracy (points)")
    res["int8"] = {}
    for name, fp, q, rep in (("onnx", onnx_fp32.model, onnx_int8, qrep), ("tflite", tfl_fp32.model, tfl_int8, trep)):
        speed = _speed({"fp32": fp, "int8": q}, x1, "fp32")
        res["int8"][name] = {
            "fp32_test_acc": _acc(fp, d.x_test, d.y_test),
            "int8_test_acc": _acc(q, d.x_test, d.y_test),
            "fp32_bytes": len(fp),
            "int8_bytes": len(q),
            "size_ratio": round(len(q) / len(fp), 4),
            "fp32_p50_ms": round(speed.latency["fp32"].p50_ms, 4),
            "int8_p50_ms": round(speed.latency["int8"].p50_ms, 4),
            "int8_speed_vs_fp32": round(speed.ratio["int8"], 3),  # > 1: int8 faster, measured side by side
            "kept_in_float": list(rep.excluded),
            "budget_met_on_val": rep.met,
        }
        res["int8"][name]["acc_drop_points"] = round(res["int8"][name]["fp32_test_acc"] - res["int8"][name]["int8_test_acc"], 3)
    (out / "digits.int8.onnx").write_bytes(onnx_int8)
    (out / "digits.int8.tflite").write_bytes(tfl_int8)

    # 4. structured pruning (50% of channels) + fine-tuning by distillation from the unpruned model
    s0, teacher_onnx = measure(teacher, d.x_test)
    pruned, plan = prune_structured(copy.deepcopy(teacher), d.x_train, StructuredPruneConfig(ratio=0.5))
    ft = TrainConfig(epochs=20, lr=1e-3, seed=0)
    pruned = distill(teacher, pruned, d.x_train, d.y_train, DistillConfig(train=ft))
    s1, pruned_onnx = measure(pruned, d.x_test)
    res["structured_pruning"] = {
        "plan": plan.to_dict(),
        "before": s0.to_dict() | {"test_acc": res["teacher"]["test_acc"]},
        "after": s1.to_dict() | {"test_acc": round(100 * accuracy(predict_logits(pruned, d.x_test), d.y_test), 3)},
    }

    # 5. unstructured magnitude pruning (70%, global, gradual) — what it does and does not buy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SparsityWarning)
        sparse = prune_unstructured(
            copy.deepcopy(teacher), UnstructuredPruneConfig(amount=0.7, scope="global", gradual=True),
            fine_tune=lambda m, hook: fit(m, d.x_train, d.y_train, TrainConfig(epochs=8, lr=5e-4), after_step=hook),
        )
    s2, sparse_onnx = measure(sparse, d.x_test)
    res["unstructured_pruning"] = {
        "sparsity": round(sparsity(sparse), 4),
        "after": s2.to_dict() | {"test_acc": round(100 * accuracy(predict_logits(sparse, d.x_test), d.y_test), 3)},
        "warning": [str(w.message) for w in caught][:1],
    }
    # the latency figures of both pruning results come from one side-by-side run with the unpruned teacher
    speed = _speed({"teacher": teacher_onnx, "structured": pruned_onnx, "unstructured": sparse_onnx}, x1, "teacher")
    res["structured_pruning"]["before"]["latency"] = speed.latency["teacher"].to_dict()
    for key, name in (("structured_pruning", "structured"), ("unstructured_pruning", "unstructured")):
        res[key]["after"]["latency"] = speed.latency[name].to_dict()
        res[key]["speed_vs_unpruned"] = round(speed.ratio[name], 3)  # > 1: faster than the teacher
    res["latency_method"] = speed.timed

    # 6. distillation: a student with <= 1/4 of the teacher's parameters, with vs without the teacher.
    #    Both arms get the same data, epochs, lr and initial weights; two data settings: the plain
    #    training set (20 epochs) and an augmented transfer set (train + 3 shifted/noisy copies, 5 epochs).
    from edgeseal.converters.zoo import augment_digits

    x_aug, y_aug = augment_digits(d.x_train, d.y_train, copies=3, seed=0)
    res["distillation"] = {"temperature": 4.0, "alpha": 0.7, "teacher_params": count_params(teacher)}
    for setting, (xs, ys, epochs) in {"plain": (d.x_train, d.y_train, 20), "augmented": (x_aug, y_aug, 5)}.items():
        rows = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            student = DigitsCNN(channels=(8, 16, 32), hidden=64)
            cfg = TrainConfig(epochs=epochs, lr=3e-3, seed=seed)
            alone = fit(copy.deepcopy(student), xs, ys, cfg)
            taught = distill(teacher, copy.deepcopy(student), xs, ys, DistillConfig(temperature=4.0, alpha=0.7, train=cfg))
            rows.append({
                "seed": seed,
                "alone_test_acc": round(100 * accuracy(predict_logits(alone, d.x_test), d.y_test), 3),
                "distilled_test_acc": round(100 * accuracy(predict_logits(taught, d.x_test), d.y_test), 3),
            })
        res["distillation"]["student_params"] = count_params(student)
        res["distillation"][setting] = {
            "samples": len(xs), "epochs": epochs, "seeds": rows,
            "alone_mean": round(float(np.mean([r["alone_test_acc"] for r in rows])), 3),
            "distilled_mean": round(float(np.mean([r["distilled_test_acc"] for r in rows])), 3),
        }

    # 7. seal the int8 ONNX model for one device and run it through the sealed runtime
    res["sealed"] = _seal_and_run(onnx_int8, d, out)
    return res


def _runner_argmax(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    from edgeseal.converters.infer import runner_for

    return runner_for(model_bytes).run_batched(x).argmax(-1)


def _seal_and_run(model_bytes: bytes, d, out: Path) -> dict:
    import edgeseal
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    publisher, device = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    sealed = edgeseal.seal(model_bytes, publisher=publisher, devices=[device.public_key()], name="digits-int8")
    (out / "digits.int8.eseal").write_bytes(sealed)
    model = edgeseal.load(sealed, key=device, trusted=[publisher.public_key()])
    name = model.inputs[0].name
    preds = np.concatenate([model.run({name: d.x_test[i : i + 1]})[model.outputs[0].name] for i in range(len(d.x_test))]).argmax(-1)
    return {"sealed_bytes": len(sealed), "test_acc": round(100 * float(np.mean(preds == d.y_test)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/digits")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    res = run(Path(args.out), seeds=args.seeds)
    text = json.dumps(res, indent=2, default=float)
    if args.json:
        Path(args.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
