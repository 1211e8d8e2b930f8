"""``run_audit``: train the target, build its variants, attack every artifact, aggregate over seeds.

The returned report is a plain JSON-ready dict (schema ``edgeseal.audit/1``);
``report.write_html`` renders it and ``gate.evaluate`` checks it against limits.
"""

from __future__ import annotations

import platform
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from ..progress import Progress, Task
from . import membership as MI
from .artifacts import ArtifactBase, TorchArtifact
from .config import AuditConfig, Variant, config_to_dict
from .data import Dataset, load_dataset, member_split, subsample
from .disagreement import search_disagreements
from .attribution import AttributionSettings, attribution_study
from .blackbox import square_attack
from .explain import explanation_drift, feature_groups
from .robustness import fgsm, pgd, random_search_attack, robust_accuracy
from .training import accuracy, make_mlp, train_classifier
from .variants import Sealer, build_variant, export_onnx_checked

__all__ = ["run_audit", "SCHEMA", "COMBINED"]

SCHEMA = "edgeseal.audit/1"
COMBINED = "combined"  # pseudo-artifact: an attacker combining the shipped compressed variants
_SHIPPED_TOGETHER = (Variant.INT8, Variant.PRUNED, Variant.DISTILLED)


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _torch_predict(module) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.asarray(x, np.float32))).double().numpy()

    return predict


def environment() -> dict[str, Any]:
    """The Python, machine and package versions an audit ran with (recorded in every audit report)."""
    import importlib.metadata as md

    env = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("edgeseal", "torch", "onnxruntime", "opacus", "numpy", "scikit-learn"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    return env


def membership_results(artifacts: list[ArtifactBase], ds: Dataset, is_member: np.ndarray, refs: MI.ReferenceModels | None,
                       attacks: tuple[MI.MiaAttack, ...] = tuple(MI.MiaAttack), together: list[str] | None = None):
    """Each membership-inference attack on each artifact (and on ``together``, the artifacts' pooled scores)."""
    out: dict[str, Any] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for art in artifacts:
        z = art.predict(ds.x)
        scores[art.name] = {a.value: MI.attack_scores(a, z, ds.y, refs) for a in attacks}
        out[art.name] = {
            "accuracy": accuracy(z[~is_member], ds.y[~is_member]),
            "train_accuracy": accuracy(z[is_member], ds.y[is_member]),
            "size_bytes": art.size_bytes,
            "deflated_bytes": art.metadata.get("deflated_bytes"),
            "sealed": bool(art.metadata.get("sealed", False)),
            "info": {k: v for k, v in art.metadata.items() if k not in ("sealed", "deflated_bytes")},
            "mia": {a: MI.evaluate_scores(a, s, is_member).to_dict() for a, s in scores[art.name].items()},
        }
    shipped = [v.value for v in _SHIPPED_TOGETHER if v.value in scores] if together is None else list(together)
    combined = None
    if len(shipped) >= 2:
        combined = {"variants": shipped,
                    "mia": {a.value: MI.evaluate_scores(a.value, MI.combine_scores([scores[s][a.value] for s in shipped]),
                                                        is_member).to_dict() for a in attacks}}
    return out, combined


class _AsImage:
    """A flat-input artifact seen as taking images ``(N, 1, H, W)``: what ART's image attacks call."""

    def __init__(self, inner: ArtifactBase) -> None:
        self.inner = inner

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict(np.asarray(x, np.float32).reshape(len(x), -1))


def _robustness(cfg: AuditConfig, ds: Dataset, ref: TorchArtifact, artifacts: list[ArtifactBase],
                x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    rc = cfg.robustness
    eps_list = rc.epsilons_for(ds.name)
    image = (1, *ds.image_shape) if ds.image_shape and ds.lo is not None else None  # ART's square attack: images

    def blackbox(art: ArtifactBase, eps: float) -> np.ndarray:
        if image is None:  # tabular records: no maintained score-based attack covers them, so edgeseal's own
            return random_search_attack(art, x, y, eps, queries=rc.blackbox_queries, lo=ds.lo, hi=ds.hi, seed=seed)
        adv = square_attack(_AsImage(art), x.reshape(len(x), *image), y, eps, queries=rc.blackbox_queries,
                            n_classes=ds.n_classes, lo=ds.lo, hi=ds.hi, seed=seed)
        return adv.reshape(len(x), -1)

    curves: dict[str, dict[str, list[float]]] = {a.name: {"fgsm": [], "pgd": [], "blackbox": []} for a in artifacts}
    queries: dict[str, int] = {}
    for eps in eps_list:
        x_fgsm = fgsm(ref.module, x, y, eps, lo=ds.lo, hi=ds.hi)
        x_pgd = pgd(ref.module, x, y, eps, steps=rc.pgd_steps, step=rc.pgd_step_ratio * eps, lo=ds.lo, hi=ds.hi,
                    seed=seed)
        for art in artifacts:
            curves[art.name]["fgsm"].append(robust_accuracy(art, x_fgsm, y))
            curves[art.name]["pgd"].append(robust_accuracy(art, x_pgd, y))
            before = art.queries
            x_bb = blackbox(art, eps)
            queries[art.name] = queries.get(art.name, 0) + art.queries - before
            curves[art.name]["blackbox"].append(robust_accuracy(art, x_bb, y))
    return {"epsilons": list(eps_list), "examples": int(len(x)), "norm": "linf", "curves": curves,
            "attacks": {"fgsm": "white-box on the fp32 reference, transferred",
                        "pgd": f"white-box on fp32, {rc.pgd_steps} steps of {rc.pgd_step_ratio}*eps, random start, "
                               "transferred",
                        "blackbox": (f"ART square attack (L-inf, score-based) on the artifact itself, {rc.blackbox_queries} "
                                     "iterations per epsilon" if image else
                                     f"edgeseal's score-based random search on the artifact itself (ART's square attack "
                                     f"is for images), {rc.blackbox_queries} queries per example and epsilon")},
            "blackbox_queries_total": queries}


def _run_seed(cfg: AuditConfig, ds: Dataset, refs: MI.ReferenceModels, seed: int, sealer: Sealer,
              progress: Task) -> dict[str, Any]:
    split = member_split(len(ds.y), seed=seed, member_fraction=cfg.member_fraction)
    is_member = np.zeros(len(ds.y), bool)
    is_member[split.members] = True
    fp32 = make_mlp(ds.n_features, ds.n_classes, cfg.train.hidden, seed=seed)
    train_classifier(fp32, ds.x[split.members], ds.y[split.members], cfg.train, seed=seed)
    ref = TorchArtifact(name="fp32", kind="fp32", module=fp32, metadata={"sealed": False, "role": "reference"})
    fp32_onnx = export_onnx_checked(fp32, ds.x[split.members][:64])
    ref.size_bytes = len(fp32_onnx)
    ref.metadata["deflated_bytes"] = len(zlib.compress(fp32_onnx, 9))
    progress.advance(description=f"audit: {ds.name} seed {seed}: fp32 target trained")
    artifacts: list[ArtifactBase] = [ref]
    for v in cfg.variants:
        built = build_variant(v, fp32, ds, split.members, opts=cfg.variant_options, train=cfg.train,
                              epsilons=cfg.robustness.epsilons_for(ds.name), sealer=sealer, seed=seed,
                              fp32_onnx=fp32_onnx)
        artifacts.append(built.artifact)
        progress.advance(description=f"audit: {ds.name} seed {seed}: built {v.value}")
    mia, combined = membership_results(artifacts, ds, is_member, refs)
    progress.advance(description=f"audit: {ds.name} seed {seed}: membership inference")
    rng = np.random.default_rng(seed)
    eval_idx = rng.permutation(split.nonmembers)
    rob_idx = eval_idx[: cfg.robustness.examples]
    robustness = _robustness(cfg, ds, ref, artifacts, ds.x[rob_idx], ds.y[rob_idx], seed)
    progress.advance(description=f"audit: {ds.name} seed {seed}: robustness")
    disagreement = {}
    if any(a.name == Variant.INT8.value for a in artifacts):
        int8 = next(a for a in artifacts if a.name == Variant.INT8.value)
        dis_idx = eval_idx[: cfg.disagreement.examples]
        disagreement[int8.name] = search_disagreements(
            ref, int8, ds.x[dis_idx], ds.x, radius=cfg.disagreement.radius.get(ds.name, 0.1),
            queries=cfg.disagreement.queries, lo=ds.lo, hi=ds.hi, seed=seed).to_dict()
    progress.advance(description=f"audit: {ds.name} seed {seed}: disagreement search")
    groups = feature_groups(ds.n_features, ds.image_shape, cfg.explanation.patch)
    baseline = np.zeros(ds.n_features, np.float32) if ds.image_shape else ds.x.mean(axis=0)
    exp_idx = eval_idx[: cfg.explanation.examples]
    explanation = {a.name: explanation_drift(ref, a, ds.x[exp_idx], groups=groups, baseline=baseline).to_dict()
                   for a in artifacts[1:]}
    progress.advance(description=f"audit: {ds.name} seed {seed}: explanation drift")
    attribution = _attribution(cfg, ds, ref, artifacts[1:], exp_idx, groups, baseline, seed)
    progress.advance(description=f"audit: {ds.name} seed {seed}: LIME/SHAP attribution drift")
    return {"seed": seed, "split": split.to_dict(),
            "indices": {"robustness": rob_idx.tolist(), "disagreement": eval_idx[: cfg.disagreement.examples].tolist(),
                        "explanation": exp_idx.tolist()},
            "artifacts": mia, "combined": combined, "robustness": robustness,
            "disagreement": disagreement, "explanation": explanation, "attribution": attribution}


def _attribution(cfg: AuditConfig, ds: Dataset, ref: TorchArtifact, artifacts: list[ArtifactBase],
                 idx: np.ndarray, groups: list[np.ndarray], baseline: np.ndarray, seed: int) -> dict[str, Any]:
    """Occlusion, LIME and SHAP drift of every artifact vs fp32, and the maps of the first few inputs."""
    ec = cfg.explanation
    settings = AttributionSettings(lime_samples=ec.lime_samples, shap_samples=ec.shap_samples, top_k=ec.top_k,
                                   seed=seed)
    study = attribution_study(ref, artifacts, ds.x[idx], groups=groups, baseline=baseline, methods=ec.methods,
                              settings=settings)
    out = study.to_dict(pictures=min(ec.pictures, len(idx)))
    if "pictures" in out:
        k = len(out["pictures"]["classes"])
        out["pictures"].update(indices=idx[:k].tolist(), inputs=np.round(ds.x[idx[:k]], 6).tolist(),
                               labels=ds.y[idx[:k]].tolist(), groups=[g.tolist() for g in groups],
                               image_shape=list(ds.image_shape) if ds.image_shape else None)
    out["baseline"] = "zeros (blank image)" if ds.image_shape else "pool mean"
    return out


def summarize_seeds(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over the seeds of an audit: one summary per artifact, attack and curve."""
    names = list(seeds[0]["artifacts"])
    attacks = list(seeds[0]["artifacts"][names[0]]["mia"])
    robust_attacks = list(seeds[0]["robustness"]["curves"][names[0]])
    arts: dict[str, Any] = {}
    for n in names:
        per = [s["artifacts"][n] for s in seeds]
        arts[n] = {
            "accuracy": _stats([p["accuracy"] for p in per]),
            "train_accuracy": _stats([p["train_accuracy"] for p in per]),

            "sealed": per[0]["sealed"],
            "mia": {a: {m: _stats([p["mia"][a][m] for p in per])
                        for m in ("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")} for a in attacks},
            "roc": {a: {"fpr": per[0]["mia"][a]["roc"]["fpr"],
                        "tpr": np.mean([p["mia"][a]["roc"]["tpr"] for p in per], axis=0).round(6).tolist()}
                    for a in attacks},
        }
        for key in ("size_bytes", "deflated_bytes"):  # absent when the artifact cannot tell (e.g. a torch module)
            vals = [p[key] for p in per if p.get(key) is not None]
            if vals:
                arts[n][key] = _stats(vals)
        for key in ("epsilon", "delta", "noise_multiplier", "sparsity"):
            vals = [p["info"][key] for p in per if key in p["info"]]
            if vals:
                arts[n].setdefault("info", {})[key] = _stats(vals)
    out: dict[str, Any] = {"artifacts": arts}
    if seeds[0]["combined"]:
        c = [s["combined"] for s in seeds]
        out["combined"] = {"variants": c[0]["variants"],
                           "mia": {a: {m: _stats([x["mia"][a][m] for x in c])
                                       for m in ("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")}
                                   for a in attacks},
                           "roc": {a: {"fpr": c[0]["mia"][a]["roc"]["fpr"],
                                       "tpr": np.mean([x["mia"][a]["roc"]["tpr"] for x in c], axis=0).round(6).tolist()}
                                   for a in attacks}}
    rob = seeds[0]["robustness"]
    out["robustness"] = {"epsilons": rob["epsilons"], "curves": {
        n: {atk: {"mean": np.mean([s["robustness"]["curves"][n][atk] for s in seeds], axis=0).round(6).tolist(),
                  "std": np.std([s["robustness"]["curves"][n][atk] for s in seeds], axis=0, ddof=1 if len(seeds) > 1 else 0).round(6).tolist()}
            for atk in robust_attacks} for n in names}}
    out["disagreement"] = {n: {"rate": _stats([s["disagreement"][n]["rate"] for s in seeds]),
                               "natural": _stats([s["disagreement"][n]["natural"] for s in seeds]),
                               "found": _stats([s["disagreement"][n]["found"] for s in seeds]),
                               "linf_median": _stats([s["disagreement"][n]["linf_distance"]["median"] for s in seeds
                                                      if s["disagreement"][n]["linf_distance"]["median"] is not None] or [float("nan")]),
                               "radius": seeds[0]["disagreement"][n]["radius"],
                               "start_points": seeds[0]["disagreement"][n]["start_points"]}
                           for n in seeds[0]["disagreement"]}
    out["explanation"] = {n: {"spearman_mean": _stats([s["explanation"][n]["spearman_mean"] for s in seeds]),
                              "top5_overlap_mean": _stats([s["explanation"][n]["top5_overlap_mean"] for s in seeds])}
                          for n in seeds[0]["explanation"]}
    if seeds[0].get("attribution"):
        drift = [s["attribution"]["drift"] for s in seeds]
        out["attribution"] = {n: {m: {key: _stats([d[n][m][key] for d in drift])
                                      for key in ("spearman_mean", "topk_overlap_mean")} | {"top_k": per[m]["top_k"]}
                                  for m in per} for n, per in drift[0].items()}
        if "pictures" in seeds[0]["attribution"]:
            out["attribution_pictures"] = {"seed": seeds[0]["seed"], **seeds[0]["attribution"]["pictures"]}
    return out


def run_audit(cfg: AuditConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole audit described by ``cfg``; returns the JSON-ready report (without the gate)."""
    import torch

    # Tiny MLPs gain nothing from intra-op threads, and on a loaded machine every op would wait
    # for a descheduled sibling thread (measured: 8x slower at load 3 on 2 cores).
    # The caller's setting is restored on return.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    steps_per_seed = 6 + len(cfg.variants)
    sink = Progress(quiet=not progress)
    bar = sink.start("audit", len(cfg.datasets) * (cfg.membership.reference_models + len(cfg.seeds) * steps_per_seed))
    sealer = Sealer(enabled=cfg.sealed)
    datasets: dict[str, Any] = {}
    try:
        for name in cfg.datasets:
            ds, pool_idx = subsample(load_dataset(name), cfg.pool_size.get(name.value), seed=cfg.pool_seed)

            def train_fn(x, y, seed, _ds=ds):
                m = make_mlp(_ds.n_features, _ds.n_classes, cfg.train.hidden, seed=seed)
                return _torch_predict(train_classifier(m, x, y, cfg.train, seed=seed))

            refs = MI.train_reference_models(ds.x, ds.y, count=cfg.membership.reference_models,
                                             seed=cfg.membership.reference_seed, train_fn=train_fn,
                                             progress=lambda _n=ds.name: bar.advance(description=f"audit: {_n}: reference models"))
            seeds = [_run_seed(cfg, ds, refs, s, sealer, bar) for s in cfg.seeds]
            datasets[ds.name] = {
                "n_records": int(len(ds.y)), "pool_seed": cfg.pool_seed,
                "pool_indices": pool_idx.tolist(), "n_features": ds.n_features, "n_classes": ds.n_classes,
                "input_range": None if ds.lo is None else [ds.lo, ds.hi],
                "reference_models": {"count": refs.count, "seed": refs.seed, "recipe": cfg.train.to_dict(),
                                     "pool": "all pool records; each reference trained on a balanced random half of them",
                                     "note": "fp32 reference models, same architecture and recipe as the target"},
                "seeds": seeds,
                "summary": summarize_seeds(seeds),
            }
    finally:
        sink.close()
        torch.set_num_threads(previous_threads)
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "config": config_to_dict(cfg),
        "environment": environment(),
        "attacks": {
            "membership": {"loss": "threshold on cross-entropy (Yeom et al. 2018)",
                           "confidence": "threshold on logit-scaled true-class confidence",
                           "lira": "online LiRA, fixed variance (Carlini et al. 2022)",
                           "lira_offline": "offline LiRA (OUT reference models only)",
                           "combined": "sum of standardized per-variant scores over the variants shipped together"},
            "members": "half of the records (split seed = run seed) trained the target; the other half are "
                       "non-members and the test set",
        },
        "datasets": datasets,
    }
