"""What ``edgeseal compress`` reports on four architectures nobody tuned it for, written down.

    python bench/compress_claims.py      # -> bench/results/compress_claims.{json,md}

The same four models as ``tests/sdk/test_compress_claims.py`` (conv + BatchNorm, depthwise-separable
with ReLU6, a GRU, a transformer encoder layer), trained 4 epochs on scikit-learn's digits (seed 0),
compressed with int8 static (ONNX and TFLite) and dynamic (ONNX), budget 1 point. For each: the
accuracy drop, the share of parameters and MACs that still compute in float (read off the output
graph), the speed ratio to fp32 measured side by side (with its per-round quartiles), whether the
int8-slower warning fired, and the exporter debug metadata dropped from the fp32 file. The machine
is shared with other jobs, so the speed ratios are noisy; they are medians of interleaved rounds.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))


def main() -> None:
    import torch

    from edgeseal.compress import compress
    from edgeseal.converters.train import TrainConfig, fit
    from edgeseal.converters.zoo import load_digits_split
    from edgeseal.compress.recipe import CompressRecipe, ExportStage, QuantizeStage
    from test_compress_claims import ARCHS  # the architectures are defined once, in the test

    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import cpu_name

    torch.set_num_threads(1)
    d = load_digits_split()
    rows = []
    for arch, cls in ARCHS.items():
        torch.manual_seed(0)
        model = fit(cls(), d.x_train, d.y_train, TrainConfig(epochs=4, lr=3e-3, seed=0, device="cpu", show_progress=False))
        for mode, fmt in (("static", "onnx"), ("dynamic", "onnx"), ("static", "tflite")):
            recipe = CompressRecipe(quantize=QuantizeStage(mode=mode, max_drop=1.0), export=ExportStage(format=fmt),
                                    latency_runs=300)
            try:
                r = compress(model.eval(), recipe, calibration=d.x_val, eval=(d.x_test, d.y_test), show_progress=False)
            except Exception as exc:  # an architecture a converter cannot take is a result too
                rows.append({"arch": arch, "mode": mode, "format": fmt, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            rep = r.report
            final = rep.stages[-1]
            rows.append({
                "arch": arch, "mode": mode, "format": fmt,
                "fp32_accuracy": round(rep.reference_accuracy, 2), "int8_accuracy": round(100 * final.classification.accuracy, 2),
                "drop_points": round(rep.final_drop, 2), "met": rep.met,
                "fp32_bytes": rep.stages[0].size_bytes, "int8_bytes": final.size_bytes,
                "float_param_share": round(rep.float_ops.float_param_share, 4),
                "float_mac_share": round(rep.float_ops.float_mac_share, 4),
                "float_ops": [f"{o.name} ({o.op_type})" for o in rep.float_ops.weighted_float()],
                "speed_vs_fp32": round(final.speed_vs_original, 3),
                "speed_iqr": [round(v, 3) for v in rep.speed.ratio_iqr[final.stage]],
                "int8_slower_warning": any(w.startswith("int8 is ") for w in rep.warnings),
                "debug_metadata_bytes_dropped": rep.export.debug_metadata_bytes if rep.export else None,
            })
            print(rows[-1], flush=True)
    out = {"machine": {"cpu": cpu_name(), "python": platform.python_version(), "shared": True}, "rows": rows}
    res = ROOT / "bench" / "results"
    (res / "compress_claims.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# edgeseal compress on four architectures (bench/compress_claims.py)", "",
        f"CPU: {out['machine']['cpu']}; shared with other jobs while measured (speed ratios are medians of "
        "interleaved rounds, quartiles in brackets). Budget 1 point; 4 training epochs, seed 0; 360 test images.", "",
        "| arch | int8 | fp32 % | int8 % | drop | float params | float MACs | still float | speed vs fp32 | slower warning | debug metadata dropped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['format']} {r['mode']} | | | | | | {r['error']} | | | |")
            continue
        lines.append(
            f"| {r['arch']} | {r['format']} {r['mode']} | {r['fp32_accuracy']:.2f} | {r['int8_accuracy']:.2f} | "
            f"{r['drop_points']:.2f} | {100 * r['float_param_share']:.1f}% | {100 * r['float_mac_share']:.1f}% | "
            f"{', '.join(r['float_ops']) or '-'} | {r['speed_vs_fp32']:.2f}x [{r['speed_iqr'][0]:.2f}-{r['speed_iqr'][1]:.2f}] | "
            f"{'yes' if r['int8_slower_warning'] else 'no'} | {r['debug_metadata_bytes_dropped'] or '-'} |")
    (res / "compress_claims.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
