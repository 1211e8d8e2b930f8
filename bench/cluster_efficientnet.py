"""EfficientNet-Lite0 weight clustering: k-means codebooks vs entropy-coded uniform grids, sealed, in one run.

    python bench/cluster_efficientnet.py [--evaluation 200] [--selection 100]
    # writes bench/results/cluster_efficientnet.{json,md}

Model: pretrained EfficientNet-Lite0 (ImageNet; edgeseal.converters.vision.load_efficientnet_lite0),
exported to ONNX (batch-norm folded into the convolutions). Data: deterministic augmented crops of
the photographs bundled with scikit-image — selection crops (cluster widths, the budget) from the
calibration photos, evaluation crops from the other photos. No labels: top-1 agreement with the fp32
model. Both variants work on the exported graph (batch-norm folded), with no fine-tuning (no labelled
ImageNet data here), and choose per layer under the same agreement budget on the selection crops:

* ``kmeans_per_channel`` — k-means codebooks per output channel (``method="kmeans"``), widths 2..8 bits;
* ``grid_entropy`` — a uniform grid per output channel (``method="grid"``): one per-tensor codebook of levels,
  channel scales as a ``Mul`` after the layer, bias correction; the step of each layer picked on output noise
  per *measured* encoded byte.

Then, on the grids: ``*_finetuned`` distils the channel scales and biases from fp32 (levels unchanged);
``*_adaround`` keeps the steps and learns each level's rounding with AdaRound (``cluster.adaround_grids``, what
``[cluster] adaround = N`` runs), on crops of the calibration photos.

``encoded_bytes`` = codebook records + zlib graph (``converters.cluster.encoded_size``).
``sealed_codebook_bytes`` = a real sealed package (signed, one X25519 device slot, zlib) of content format
``onnx+codebook`` (``cluster.codebook_model``), the file that ships; ``sealed_zlib_bytes`` = the same model as a
plain ONNX file in a sealed package. Load: ``edgeseal.load`` of the codebook package vs the plain fp32 ONNX
package, interleaved; the loaded codebook model's outputs are compared bit for bit with the converter's model.
The machine was shared with other jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
import warnings
from pathlib import Path


from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
GOAL_AGREEMENT = 97.0
GRAPH_ALLOWANCE = 75_000  # bytes kept free under fp32/8 for the graph (biases, scales are counted) and the package


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluation", type=int, default=200)
    ap.add_argument("--selection", type=int, default=100)
    ap.add_argument("--probe", type=int, default=16)
    ap.add_argument("--train", type=int, default=512, help="unlabelled crops for grid fine-tuning")
    ap.add_argument("--finetune-steps", type=int, default=150)
    ap.add_argument("--max-drop", type=float, default=3.0, help="agreement points on the selection crops")
    ap.add_argument("--adaround-iterations", type=int, default=100, help="AdaRound steps per layer on the grids")
    ap.add_argument("--adaround-samples", type=int, default=32, help="calibration crops AdaRound learns from")
    args = ap.parse_args()
    import edgeseal
    from edgeseal.converters import cluster as cl
    from edgeseal.converters.adaround import AdaRoundConfig
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.grid_finetune import GridFinetuneConfig, finetune_grid
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set, load_efficientnet_lite0

    warnings.simplefilter("ignore")
    t_start = time.time()
    selection = crop_set(CALIBRATION_PHOTOS, args.selection, seed=1)
    evaluation = crop_set(EVALUATION_PHOTOS, args.evaluation, seed=2)
    fp32 = export_onnx(load_efficientnet_lite0(), evaluation[:8], ExportConfig(opset=17, check_samples=8)).model
    ref_sel = runner_for(fp32).run_batched(selection, 32).argmax(-1)
    logits_eval = runner_for(fp32).run_batched(evaluation, 32).astype("float64")
    agree = lambda m, x, r: 100 * float((runner_for(m).run_batched(x, 32).argmax(-1) == r).mean())  # noqa: E731

    def on_evaluation(m: bytes) -> tuple[float, float]:
        """(top-1 agreement %, logit SQNR dB) against fp32 on the evaluation crops, from one run; the SQNR is
        steadier than agreement near ties."""
        import numpy as np

        out = runner_for(m).run_batched(evaluation, 32).astype(np.float64)
        return (100 * float((out.argmax(-1) == logits_eval.argmax(-1)).mean()),
                float(10 * np.log10(np.sum(logits_eval ** 2) / np.sum((logits_eval - out) ** 2))))
    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    seal = lambda m, fmt="onnx": edgeseal.seal(m, publisher=publisher, devices=[device.public_key()],  # noqa: E731
                                               compression="zlib", content_format=fmt, now=1_700_000_000.0)
    result: dict = {"fp32_onnx_bytes": len(fp32), "variants": {}}
    one_eighth = len(fp32) // 8 - GRAPH_ALLOWANCE
    configs = {
        "kmeans_per_channel": cl.ClusterConfig(max_drop=args.max_drop, bits=(2, 3, 4, 5, 6, 8), per_channel=True,
                                               probe_samples=args.probe, min_params=256),
        "grid_entropy": cl.ClusterConfig(method="grid", max_drop=args.max_drop, probe_samples=args.probe,
                                         min_params=256),
        # the same with a tighter selection budget (100 selection crops: one crop is one point, and the 3-point
        # grid model of a first run agreed on 95.5 % of the evaluation crops)
        "grid_entropy_2pt": cl.ClusterConfig(method="grid", max_drop=args.max_drop - 1, probe_samples=args.probe,
                                             min_params=256),
        # the finest grid allocation whose records + scales fit 1/8 of fp32 (less an allowance for the graph and
        # the package), whatever its agreement: max_drop 0 stops the search at the start of the capped path
        "grid_one_eighth": cl.ClusterConfig(method="grid", max_drop=0.0, probe_samples=args.probe, min_params=256,
                                            max_bytes=one_eighth),
    }
    models: dict[str, bytes] = {}

    def describe(name: str, model: bytes, how: str, report, t0: float, extra: dict | None = None) -> None:
        models[name] = model
        size = cl.encoded_size(model)[0]
        package = seal(cl.codebook_model(model), "onnx+codebook")
        v = {"how": how, "encoded_bytes": size.total, "encoded": size.to_dict(),
             "sealed_codebook_bytes": len(package), "sealed_zlib_bytes": len(seal(model)),
             "ratio_encoded_vs_fp32": len(fp32) / size.total, "ratio_sealed_vs_fp32": len(fp32) / len(package),
             "selection_agreement": agree(model, selection, ref_sel),
             **dict(zip(("evaluation_agreement", "evaluation_sqnr_db"), on_evaluation(model))),
             "clustering": None if report is None else report.to_dict(), "seconds": round(time.time() - t0, 1), **(extra or {})}
        v["goal"] = {"sealed<=fp32/8": len(package) <= len(fp32) / 8,
                     f"agreement>={GOAL_AGREEMENT}": v["evaluation_agreement"] >= GOAL_AGREEMENT}
        result["variants"][name] = v
        (ROOT / "bench" / "results" / "cluster_efficientnet.partial.json").write_text(json.dumps(result, default=float))
        print(name, size.total, len(package), v["selection_agreement"], v["evaluation_agreement"], flush=True)

    chosen_grids: dict[str, dict] = {}
    for name, cfg in configs.items():
        t0 = time.time()
        model, report, chosen_grids[name] = cl.cluster_onnx(fp32, selection, lambda m: agree(m, selection, ref_sel), cfg,
                                           reference_score=100.0)
        while cfg.max_bytes is not None:  # the cap is on records + scales: tighten it until the package fits
            over = len(seal(cl.codebook_model(model), "onnx+codebook")) - len(fp32) // 8
            if over <= 0:
                break
            cfg = dataclasses.replace(cfg, max_bytes=cfg.max_bytes - over - 1000)
            model, report, chosen_grids[name] = cl.cluster_onnx(fp32, selection, lambda m: agree(m, selection, ref_sel),
                                                                cfg, reference_score=100.0)
        cap = f"{cfg.max_bytes:,}" if cfg.max_bytes is not None else ""
        how = {"kmeans_per_channel": f"k-means per output channel, widths 2..8 bits within {args.max_drop:g} points "
                                     "on the selection crops",
               "grid_entropy": f"uniform grid per output channel, entropy-coded, steps within {args.max_drop:g} "
                               "points on the selection crops, bias correction",
               "grid_entropy_2pt": f"the same within {args.max_drop - 1:g} points",
               "grid_one_eighth": f"uniform grid, the finest allocation with records + scales <= {cap} B (fp32/8 "
                                  "less an allowance for the graph and the package)"}[name]
        describe(name, model, how, report, t0)
    # grid fine-tuning: the 1/8 model's channel scales and biases distilled from fp32 on unlabelled crops of the
    # calibration photos (other crops than the selection ones); the levels, hence the records, do not change
    t0 = time.time()
    train = crop_set(CALIBRATION_PHOTOS, args.train, seed=3)
    ft_cfg = GridFinetuneConfig(steps=args.finetune_steps, batch_size=8, lr=5e-4, loss="kl")
    tuned, ft_report = finetune_grid(models["grid_one_eighth"], fp32, train, ft_cfg)
    describe("grid_one_eighth_finetuned", tuned, f"grid_one_eighth + {ft_cfg.steps} Adam steps (batch "
             f"{ft_cfg.batch_size}) on the channel scales and biases, distilled from fp32 on {len(train)} crops of the "
             "calibration photos", None, t0, {"finetune": ft_report.to_dict(), "levels_of": "grid_one_eighth"})
    # AdaRound on the chosen grids (cluster.adaround_grids, what [cluster] adaround = N runs after the search): same
    # steps and scales, each weight's level the floor or the ceiling, learned layer by layer for the layer's output
    # on crops of the calibration photos (not the selection crops); settings of the int8 recipe (100 steps, 32 crops)
    ada_cfg = AdaRoundConfig(iterations=args.adaround_iterations, samples=args.adaround_samples)
    ada_calib = crop_set(CALIBRATION_PHOTOS, args.adaround_samples, seed=3)
    for base in ("grid_entropy", "grid_one_eighth"):
        t0 = time.time()
        grids, ada_report = cl.adaround_grids(fp32, chosen_grids[base], ada_calib, ada_cfg)
        describe(f"{base}_adaround", cl.grid_model(fp32, grids),
                 f"{base}'s steps and scales, each level's rounding learned by AdaRound ({ada_cfg.iterations} steps per "
                 f"layer on {ada_cfg.samples} crops of the calibration photos, bias correction; "
                 f"cluster.adaround_grids)", None, t0, {"adaround": ada_report.to_dict(), "levels_of": base})
        if base == "grid_one_eighth":  # then the channel scales and biases distilled, as for grid_one_eighth
            t0 = time.time()
            tuned, ft_report = finetune_grid(models[f"{base}_adaround"], fp32, train, ft_cfg)
            describe(f"{base}_adaround_finetuned", tuned, f"{base}_adaround + the same distillation as "
                     f"{base}_finetuned", None, t0, {"finetune": ft_report.to_dict(), "levels_of": f"{base}_adaround"})
    result["verdict"] = verdict(result["variants"], len(fp32))
    result["load"] = load_check(models["grid_entropy"], fp32, evaluation, seal, device, publisher)
    result.update(data={"selection_crops": len(selection), "evaluation_crops": len(evaluation),
                        "selection_photos": list(CALIBRATION_PHOTOS), "evaluation_photos": list(EVALUATION_PHOTOS)},
                  machine={"cpu": cpu_name(), "python": platform.python_version(), "shared": True},
                  wall_s=round(time.time() - t_start, 1),
                  lab=json.loads((ROOT / "bench" / "ptq_lab" / "grid_attempts.json").read_text()))
    out = ROOT / "bench" / "results"
    (out / "cluster_efficientnet.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "cluster_efficientnet.partial.json").unlink(missing_ok=True)
    (out / "cluster_efficientnet.md").write_text(render(result))
    print(render(result))


def verdict(variants: dict, fp32_bytes: int) -> dict:
    """The goal judged on the real sealed packages: met by any variant? the smallest at >= 97 %, the best at 1/8."""
    sealed = lambda n: variants[n]["sealed_codebook_bytes"]  # noqa: E731
    ok = [n for n in variants if variants[n]["evaluation_agreement"] >= GOAL_AGREEMENT]
    small = [n for n in variants if sealed(n) <= fp32_bytes / 8]
    best = min(ok, key=sealed) if ok else None
    at8 = max(small, key=lambda n: variants[n]["evaluation_agreement"]) if small else None
    least = min(variants, key=sealed)
    return {"met": bool(set(ok) & set(small)),
            "smallest_sealed": {"variant": least, "sealed_bytes": sealed(least), "ratio": fp32_bytes / sealed(least),
                                "over_one_eighth_bytes": sealed(least) - fp32_bytes // 8,
                                "evaluation_agreement": variants[least]["evaluation_agreement"]},
            "smallest_at_goal_agreement": None if best is None else {
                "variant": best, "sealed_bytes": sealed(best), "ratio": fp32_bytes / sealed(best),
                "evaluation_agreement": variants[best]["evaluation_agreement"]},
            "best_agreement_at_one_eighth": None if at8 is None else {
                "variant": at8, "sealed_bytes": sealed(at8), "ratio": fp32_bytes / sealed(at8),
                "evaluation_agreement": variants[at8]["evaluation_agreement"]}}


def load_check(model: bytes, fp32: bytes, x, seal, device, publisher) -> dict:
    """Load the sealed codebook package and the sealed fp32 ONNX package (interleaved, the one harness), and check
    the loaded codebook model's outputs against the converter's model bit for bit."""
    import numpy as np

    import edgeseal
    from edgeseal.converters import cluster as cl
    from edgeseal.converters.infer import runner_for
    from edgeseal.runtime.timing import interleaved

    cb, plain = seal(cl.codebook_model(model), "onnx+codebook"), seal(fp32)
    trusted = [publisher.public_key()]
    loaded = edgeseal.load(cb, key=device, trusted=trusted)
    try:
        got = np.concatenate([loaded.run(x[i:i + 8])[loaded.outputs[0].name] for i in range(0, 32, 8)])
    finally:
        loaded.close()
    want = np.concatenate([runner_for(model).run(x[i:i + 8]) for i in range(0, 32, 8)])

    def load(package: bytes) -> None:
        m = edgeseal.load(package, key=device, trusted=trusted, threads=1)
        m.run(x[:1])
        m.close()

    speed = interleaved({"codebook": lambda: load(cb), "fp32": lambda: load(plain)}, baseline="fp32",
                        rounds=4, calls_per_round=2, warmup=1, settle=0)
    return {"codebook_package_bytes": len(cb), "fp32_package_bytes": len(plain),
            "codebook_ms_median": speed.latency["codebook"].p50_ms, "fp32_ms_median": speed.latency["fp32"].p50_ms,
            "ratio_median": speed.ratios_to("codebook")["fp32"], "runs": speed.latency["fp32"].runs,
            "outputs_bit_identical_to_converter_model": bool(got.tobytes() == want.tobytes()),
            "what": "edgeseal.load (signature, decryption, codebook decoding, session) + one run of grid_entropy's "
                    "codebook package vs the fp32 ONNX package, interleaved; outputs on 32 evaluation crops"}


def render(r: dict) -> str:
    lines = ["# EfficientNet-Lite0: weight clustering", "",
             f"fp32 ONNX {r['fp32_onnx_bytes']:,} bytes; goal: <= 1/8 ({r['fp32_onnx_bytes'] / 8:,.0f} bytes) at >= "
             f"{GOAL_AGREEMENT:g} % top-1 agreement with fp32 on {r['data']['evaluation_crops']} held-out crops "
             f"(widths chosen on {r['data']['selection_crops']} other crops).", "",
             "| variant | encoded bytes | sealed onnx+codebook | fp32 / sealed | sealed plain ONNX (zlib) | "
             "selection agr. % | evaluation agr. % | evaluation logit SQNR dB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, v in r["variants"].items():
        sq = f"{v['evaluation_sqnr_db']:.2f}" if "evaluation_sqnr_db" in v else ""
        lines.append(f"| {name} | {v['encoded_bytes']:,} | {v['sealed_codebook_bytes']:,} | "
                     f"{v['ratio_sealed_vs_fp32']:.2f} | {v['sealed_zlib_bytes']:,} | {v['selection_agreement']:.2f} | "
                     f"{v['evaluation_agreement']:.2f} | {sq} |")
    for name, v in r["variants"].items():
        goals = "goals: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in v["goal"].items())
        if v["clustering"] is None and "adaround" in v:
            ar = v["adaround"]
            lines += ["", f"{name}: {v['how']}; {len(ar['layers'])} layers, median layer output error "
                      f"{ar['median_error_ratio']:.2f}x that of nearest rounding ({v['seconds']} s); {goals}"]
            continue
        if v["clustering"] is None:
            ft = v["finetune"]
            lines += ["", f"{name}: {v['how']}; distillation loss {ft['loss_start']:.3g} -> {ft['loss_end']:.3g} "
                      f"({ft['seconds']} s); levels as {v['levels_of']}; {goals}"]
            continue
        layers = v["clustering"]["layers"]
        if "grid" in name:
            n = sum(x["params"] for x in layers)
            kept = len(v["clustering"]["steps"][0]["bits"]) - len(layers)
            lines += ["", f"{name}: {v['how']}; {len(layers)} layers on grids ({n:,} weights): order-0 entropy "
                      f"{sum(x['entropy_bits'] * x['params'] for x in layers) / max(n, 1):.2f} bits/weight, measured "
                      f"{8 * sum(x['encoded_bytes'] for x in layers) / max(n, 1):.2f} bits/weight (records + scales); "
                      f"{kept} layers kept as they were; {goals}"]
        else:
            widths: dict[int, int] = {}
            for layer in layers:
                widths[layer["bits"]] = widths.get(layer["bits"], 0) + layer["params"]
            lines += ["", f"{name}: {v['how']}; parameters per index width: "
                      + ", ".join(f"{b} bits: {n:,}" for b, n in sorted(widths.items())) + f"; {goals}"]
    vd = r["verdict"]
    a, b = vd["smallest_at_goal_agreement"], vd["best_agreement_at_one_eighth"]
    lines += ["", f"**Goal (sealed <= 1/8 of fp32 at >= {GOAL_AGREEMENT:g} % on the evaluation crops): "
              f"{'MET' if vd['met'] else 'NOT met'}.** "
              + (f"Smallest sealed package at >= {GOAL_AGREEMENT:g} %: {a['variant']}, {a['sealed_bytes']:,} B "
                 f"({a['ratio']:.2f}x smaller), {a['evaluation_agreement']:.1f} %. " if a else "")
              + (f"Best agreement at <= 1/8: {b['variant']}, {b['sealed_bytes']:,} B ({b['ratio']:.2f}x), "
                 f"{b['evaluation_agreement']:.1f} %. " if b else "")
              + "Smallest sealed package: {variant}, {sealed_bytes:,} B ({ratio:.2f}x; {over:+,} B against 1/8), "
                "{evaluation_agreement:.1f} %.".format(**vd["smallest_sealed"], over=vd["smallest_sealed"]
                                                       ["over_one_eighth_bytes"])]
    ld = r["load"]
    lines += ["", f"Load ({ld['what']}): codebook package ({ld['codebook_package_bytes']:,} B) "
              f"{ld['codebook_ms_median']:.1f} ms vs fp32 package ({ld['fp32_package_bytes']:,} B) "
              f"{ld['fp32_ms_median']:.1f} ms median; per-round ratio median {ld['ratio_median']:.2f} over {ld['runs']} "
              f"loads each. Outputs bit-identical to the converter's model: "
              f"{ld['outputs_bit_identical_to_converter_model']}."]
    if r.get("lab"):
        lab = r["lab"]
        lines += ["", "## Lab runs: AdaRound on the 1/8 grid", "", lab["note"], "",
                  "| method | selection agr. % / SQNR dB | evaluation agr. % / SQNR dB | note |", "|---|---|---|---|"]
        for a in lab["attempts"]:
            lines.append(f"| {a['method']} | {a['selection'][0]:.1f} / {a['selection'][1]:.2f} | "
                         f"{a['evaluation'][0]:.1f} / {a['evaluation'][1]:.2f} | {a.get('note', '')} |")
    lines += ["", f"Machine: {r['machine']['cpu']} (shared). Wall {r['wall_s']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--render"]:  # re-derive the verdict and the table from the recorded measurements
        path = ROOT / "bench" / "results" / "cluster_efficientnet.json"
        res = json.loads(path.read_text())
        res["verdict"] = verdict(res["variants"], res["fp32_onnx_bytes"])
        path.write_text(json.dumps(res, indent=2, default=float))
        path.with_suffix(".md").write_text(render(res))
        print(render(res))
    else:
        main()
