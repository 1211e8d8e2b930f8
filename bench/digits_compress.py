"""Digits compression benchmark: runs examples/digits/run.py and writes bench/results/digits_compress.{json,md}.

    python bench/digits_compress.py

Numbers: accuracy on the held-out test split (360 real images), budgets checked on
the validation split; latency p50, batch 1, one thread, this machine.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec = importlib.util.spec_from_file_location("digits_run", ROOT / "examples" / "digits" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t0 = time.time()
    res = mod.run(ROOT / "out" / "digits")
    res["machine"] = {"cpu": _cpu(), "python": platform.python_version(), "timing": "batch 1, 1 thread"}
    res["wall_s"] = round(time.time() - t0, 1)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits_compress.json").write_text(json.dumps(res, indent=2, default=float))
    (out / "digits_compress.md").write_text(render(res))
    print(render(res))


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
        f"## Distillation (student {ds['student_params']:,} params = 1/{ds['teacher_params'] / ds['student_params']:.1f} of the teacher, "
        f"T={ds['temperature']}, alpha={ds['alpha']}; same init, data, epochs and lr in both arms)",
        "",
    ]
    for setting in ("plain", "augmented"):
        v = ds[setting]
        lines += [
            f"{setting}: {v['samples']:,} training samples, {v['epochs']} epochs",
            "",
            "| seed | alone | distilled |",
            "|---|---|---|",
        ]
        lines += [f"| {s['seed']} | {s['alone_test_acc']:.2f} | {s['distilled_test_acc']:.2f} |" for s in v["seeds"]]
        lines += [f"| mean | {v['alone_mean']:.2f} | {v['distilled_mean']:.2f} |", ""]
    lines += [f"Sealed int8 ONNX: {r['sealed']['sealed_bytes']:,} bytes, test accuracy through edgeseal.load: {r['sealed']['test_acc']:.2f}%.", ""]
    lines += [f"Machine: {r['machine']}; wall time {r['wall_s']} s.", ""]
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    main()
