"""Render an audit report: JSON for machines, a self-contained HTML page (plots inlined as
base64 PNG, no external resource) and a short Markdown summary for people.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..report.base import Report
from ..report.html import color, figure, image_data, page, table

__all__ = ["AuditReport", "write_json", "render_html", "write_html", "render_markdown", "figures", "crop_figures",
           "render_crops_html", "render_crops_markdown", "crop_tables"]

_ATTACK_TITLES = {"lira": "LiRA (online, reference models)", "loss": "loss threshold",
                  "confidence": "confidence threshold", "lira_offline": "LiRA (offline)"}
_ROBUST_TITLES = {"fgsm": "FGSM (fp32, transferred)", "pgd": "PGD (fp32, transferred)",
                  "transfer": "black-box on the reference, transferred", "blackbox": "black-box on the artifact"}


def _headline(summary: dict[str, Any]) -> str:
    """The strongest attack the report has: LiRA when reference models were trained, else the loss attack."""
    first = next(iter(summary["artifacts"].values()))
    return "lira" if "lira" in first["mia"] else "loss"


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, separators=(",", ":"), allow_nan=True))
    return p


def figures(report: dict[str, Any]) -> dict[str, str]:
    """Every plot of the report as ``{id: base64 PNG}`` (ROC, robust accuracy, size/accuracy/leakage)."""
    import numpy as np

    out: dict[str, str] = {}
    for dname, d in report["datasets"].items():
        s = d["summary"]
        curves = dict(s["artifacts"])
        if "combined" in s:
            curves["combined"] = s["combined"]
        head = _headline(s)
        roc_attacks = [head, "loss"] if head != "loss" else ["loss", "confidence"]
        fig, axes = figure(1, 2, figsize=(10, 4))
        for ax, attack in zip(axes, roc_attacks):
            for name, a in curves.items():
                roc = a["roc"][attack]
                auc = a["mia"][attack]["auc"]["mean"]
                ax.plot(roc["fpr"], roc["tpr"], color=color(name), lw=1.6,
                        ls="--" if name == "combined" else "-", label=f"{name} (AUC {auc:.3f})")
            ax.plot([1e-3, 1], [1e-3, 1], color="#bbbbbb", lw=1, ls=":", label="chance")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.set_title(f"{dname}: {_ATTACK_TITLES[attack]}")
            ax.legend(fontsize=7, loc="lower right")
        out[f"roc-{dname}"] = image_data(fig)

        rob = s["robustness"]
        robust_attacks = list(next(iter(rob["curves"].values())))
        fig, axes = figure(1, len(robust_attacks), figsize=(4.4 * len(robust_attacks), 3.8), sharey=True,
                                 squeeze=False)
        axes = axes[0]
        for ax, attack in zip(axes, robust_attacks):
            for name, c in rob["curves"].items():
                ax.errorbar(rob["epsilons"], c[attack]["mean"], yerr=c[attack]["std"], color=color(name),
                            marker="o", ms=3, lw=1.5, capsize=2, label=name)
            ax.set_xlabel("L-inf budget epsilon")
            ax.set_title(_ROBUST_TITLES.get(attack, attack))
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("robust accuracy")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{dname}: robust accuracy vs perturbation budget")
        out[f"robust-{dname}"] = image_data(fig)

        names = list(s["artifacts"])
        fig, axes = figure(1, 3, figsize=(13, 3.6))
        kb = [s["artifacts"][n].get("size_bytes", {"mean": 0})["mean"] / 1024 for n in names]
        acc = [s["artifacts"][n]["accuracy"]["mean"] for n in names]
        acc_sd = [s["artifacts"][n]["accuracy"]["std"] for n in names]
        auc = [s["artifacts"][n]["mia"][head]["auc"]["mean"] for n in names]
        auc_sd = [s["artifacts"][n]["mia"][head]["auc"]["std"] for n in names]
        cols = [color(n) for n in names]
        deflated = [s["artifacts"][n].get("deflated_bytes", {"mean": 0})["mean"] / 1024 for n in names]
        pos = np.arange(len(names))
        axes[0].bar(pos - 0.2, kb, width=0.4, color=cols, label="ONNX file")
        axes[0].bar(pos + 0.2, deflated, width=0.4, color=cols, alpha=0.45, hatch="//", label="deflated (zlib -9)")
        axes[0].set_xticks(pos, names)
        axes[0].legend(fontsize=7)
        axes[0].set_title("model size (KiB)")
        axes[1].bar(names, acc, yerr=acc_sd, color=cols, capsize=3)
        axes[1].set_ylim(min(acc) - 0.1, 1.0)
        axes[1].set_title("test accuracy (non-members)")
        axes[2].bar(names, auc, yerr=auc_sd, color=cols, capsize=3)
        axes[2].axhline(0.5, color="#888888", ls=":", lw=1)
        axes[2].set_ylim(0.4, max(auc) + 0.1)
        axes[2].set_title(f"membership leakage ({head} AUC)")
        for ax in axes:
            ax.tick_params(axis="x", rotation=35, labelsize=8)
        fig.suptitle(f"{dname}: size / accuracy / leakage per artifact")
        out[f"tradeoff-{dname}"] = image_data(fig)
        if "attribution_pictures" in s:
            out[f"attribution-{dname}"] = _attribution_figure(dname, s["attribution_pictures"])
    return out


_METHOD_TITLES = {"occlusion": "occlusion", "lime": "LIME", "shap": "SHAP"}


def _attribution_figure(dname: str, pics: dict[str, Any]) -> str:
    """Rows: each picture input x each method; columns: the input, then every artifact's attribution map.
    Each map is scaled to its own largest |value| (drift is about ranks, and a pruned model's
    scores are smaller overall), symmetric around 0."""
    import numpy as np

    from .attribution import group_map

    methods = list(pics["maps"])
    names = list(pics["maps"][methods[0]])
    groups = [np.asarray(g) for g in pics["groups"]]
    shape = tuple(pics["image_shape"]) if pics["image_shape"] else None
    inputs = np.asarray(pics["inputs"])
    n_in, d = inputs.shape
    rows, cols = n_in * len(methods), 1 + len(names)
    cell = 1.55 if shape else 2.4
    fig, axes = figure(rows, cols, figsize=(cell * cols, (1.55 if shape else 0.7) * rows), squeeze=False)
    for i in range(n_in):
        for k, m in enumerate(methods):
            r = i * len(methods) + k
            ax = axes[r][0]
            if k == 0:
                if shape and len(shape) == 3:  # channel-first colour crop: show it as RGB, min-max scaled
                    img = inputs[i].reshape(shape).transpose(1, 2, 0)
                    ax.imshow((img - img.min()) / (np.ptp(img) or 1.0))
                else:
                    ax.imshow(inputs[i].reshape(shape) if shape else inputs[i][None, :], cmap="gray_r",
                              aspect="auto" if not shape else "equal")
                ax.set_title(f"input {pics['indices'][i]} (label {pics['labels'][i]}, fp32 says {pics['classes'][i]})",
                             fontsize=6)
            ax.axis("off")
            vals = {n: np.asarray(pics["maps"][m][n][i]) for n in names}
            for j, n in enumerate(names):
                ax = axes[r][j + 1]
                lim = float(np.abs(vals[n]).max()) or 1.0
                pic = group_map(vals[n], groups, d, shape)
                ax.imshow(pic[0] if pic.ndim == 3 else pic, cmap="RdBu_r", vmin=-lim, vmax=lim,
                          aspect="equal" if shape else "auto")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 or k == 0:
                    ax.set_title(n, fontsize=7, color=color(n))
                if j == 0:
                    ax.set_ylabel(_METHOD_TITLES.get(m, m), fontsize=7)
    fig.suptitle(f"{dname}: attributions of the fp32 class score (red raises it, blue lowers it; "
                 "each map scaled to its own max)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_size_inches()[1]))  # room for the title
    return image_data(fig, dpi=100)


def _crop_figure(title: str, crop: Any, maps: dict[str, dict[str, Any]], groups: list[Any],
                 shape: tuple[int, ...]) -> str:
    """One crop: rows are the methods, columns the crop then every model's map over a grey copy of it.
    Each map is scaled to its own largest |value|, symmetric around 0 (red raises the class score)."""
    import numpy as np

    from .attribution import group_map

    img = np.asarray(crop, np.float64).reshape(shape).transpose(1, 2, 0)
    img = (img - img.min()) / (np.ptp(img) or 1.0)
    grey = img.mean(axis=2)
    methods = list(maps)
    names = list(maps[methods[0]])
    d = int(np.prod(shape))
    fig, axes = figure(len(methods), 1 + len(names), figsize=(1.9 * (1 + len(names)), 1.9 * len(methods)),
                             squeeze=False)
    for r, m in enumerate(methods):
        axes[r][0].axis("off")
        if r == 0:
            axes[r][0].imshow(img)
            axes[r][0].set_title(title, fontsize=7)
        for j, n in enumerate(names):
            ax = axes[r][j + 1]
            vals = np.asarray(maps[m][n], np.float64)
            lim = float(np.abs(vals).max()) or 1.0
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            ax.imshow(group_map(vals, groups, d, shape)[0], cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(n, fontsize=8, color=color(n))
            if j == 0:
                ax.set_ylabel(_METHOD_TITLES.get(m, m), fontsize=8)
    fig.tight_layout()
    return image_data(fig, dpi=90, jpeg=True)  # photographs: JPEG is a fifth of the PNG


def crop_figures(result: dict[str, Any], crops: Any) -> list[str]:
    """One base64 JPEG per crop of an :func:`edgeseal.audit.crops.explain_crops` result (its ``to_dict()``)."""
    import numpy as np

    from .explain import feature_groups

    shape = tuple(result["image_shape"])
    groups = feature_groups(int(np.prod(shape)), shape, result["patch"])
    out = []
    for i, c in enumerate(result["crops"]):
        maps = {m: {n: per[n][i] for n in per} for m, per in result["maps"].items()}
        title = f"{c['name']}: fp32 says {c['fp32_class_name']} ({c['fp32_probability']:.0%})"
        out.append(_crop_figure(title, crops[i], maps, groups, shape))
    return out


def _rho(values: list[float]) -> str:
    import numpy as np

    v = np.asarray(values, np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}"


def crop_tables(result: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(head, rows) of the drift table and of the per-crop table, as plain text cells."""
    methods = result["methods"]
    k = result["settings"]["top_k"]
    head = ["vs fp32"] + [f"{_METHOD_TITLES.get(m, m)} {h}" for m in methods for h in ("ρ", f"top-{k}")]
    rows = []
    for a in result["artifacts"]:
        per = result["per_crop"][a]
        rows.append([a] + [c for m in methods for c in (_rho(per[m]["spearman"]),
                                                        f"{result['drift'][a][m]['topk_overlap_mean']:.3f}")])
    floor = result["noise_floor"]
    if floor:
        rows.append([f"{result['reference']}, other masks (noise floor)"] + [
            c for m in methods for c in ((f"{floor[m]['spearman_mean']:.3f}", f"{floor[m]['topk_overlap_mean']:.3f}")
                                         if m in floor else ("exact", "exact"))])
    chead = ["crop", "fp32 class (p)"] + [f"{a}: top-1 / rank of fp32 class" for a in result["artifacts"]] + [
        f"{a} {_METHOD_TITLES.get(m, m)} ρ" for a in result["artifacts"] for m in methods]
    crows = []
    for i, c in enumerate(result["crops"]):
        crows.append([c["name"], f"{c['fp32_class_name']} ({c['fp32_probability']:.2f})"]
                     + [f"{c['artifacts'][a]['top1_name']} / {c['artifacts'][a]['rank_of_fp32_class']}"
                        for a in result["artifacts"]]
                     + [f"{result['per_crop'][a][m]['spearman'][i]:.3f}" for a in result["artifacts"] for m in methods])
    return head, rows, chead, crows


def _crop_facts(result: dict[str, Any]) -> str:
    s = result["settings"]
    calls = ", ".join(f"{n} {v:,} in {result['seconds'][n]:.1f} s" for n, v in result["model_calls"].items())
    return (f"{len(result['crops'])} crops of {result['image_shape'][1]}×{result['image_shape'][2]}, "
            f"{result['grid'][0]}×{result['grid'][1]} = {result['groups']} square superpixels of {result['patch']} px "
            f"(every channel); methods {', '.join(result['methods'])}; {s['lime_samples']} LIME masks and "
            f"{s['shap_samples']} Kernel SHAP samples per crop and model; mask seeds {result['mask_seeds']} "
            f"(noise floor: +{result['noise_floor_reseed']}); model calls {calls}; {result['wall_s']} s in all.")


def render_crops_html(result: dict[str, Any], crops: Any, *, title: str, intro: list[str] = (),
                      notes: list[str] = ()) -> str:
    """A self-contained page (same CSS as the audit report): drift table, per-crop table, one picture per crop."""
    e = html.escape
    head, rows, chead, crows = crop_tables(result)
    parts = [f"<h1>{e(title)}</h1>",
             f"<p class='muted'>{e(_crop_facts(result))}</p>"]
    parts += [f"<p>{e(t)}</p>" for t in intro]
    parts.append("<h2>Attribution drift vs the fp32 reference</h2>")
    parts.append(f"<p class='muted'>Spearman ρ between the fp32 and the artifact's attributions of the fp32 class score "
                 f"over the {result['groups']} superpixels (mean ± std over crops), and the overlap of their top-"
                 f"{result['settings']['top_k']} superpixels (mean). The last row is the fp32 model against itself "
                 "with other random masks: the sampling error of LIME and SHAP at this budget.</p>")
    parts.append(table(head, [[e(c) for c in r] for r in rows]))
    parts.append("<h2>Per crop</h2>")
    parts.append(table(chead, [[e(c) for c in r] for r in crows]))
    parts.append("<h2>Pictures</h2><p class='muted'>Rows: occlusion, LIME, SHAP; columns: the crop, then each "
                 "model's map over a grey copy of it (red raises the fp32 class score, blue lowers it; each map "
                 "scaled to its own largest value).</p>")
    for c, png in zip(result["crops"], crop_figures(result, crops)):
        parts.append(f"<img alt='attributions {e(c['name'])}' src='data:image/jpeg;base64,{png}'>")
    if notes:
        parts.append("<h2>What these figures mean, and their limits</h2><ul>")
        parts += [f"<li>{e(t)}</li>" for t in notes]
        parts.append("</ul>")
    return page(title, parts)


def render_crops_markdown(result: dict[str, Any], *, title: str, intro: list[str] = (),
                          notes: list[str] = ()) -> str:
    head, rows, chead, crows = crop_tables(result)

    def table(h: list[str], rs: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(h) + " |", "|---" * len(h) + "|"] + ["| " + " | ".join(r) + " |" for r in rs]

    lines = [f"# {title}", "", _crop_facts(result), ""]
    for t in intro:
        lines += [t, ""]
    lines += table(head, rows) + ["", "Per crop (artifact's own top-1 class / the rank it gives the fp32 class; ρ per "
                                  "method):", ""] + table(chead, crows) + [""]
    if notes:
        lines += ["## What these figures mean, and their limits", ""] + [f"- {t}" for t in notes] + [""]
    return "\n".join(lines)


def _f(stat: dict[str, float] | float | None, digits: int = 3, pct: bool = False) -> str:
    if stat is None:
        return "–"
    if isinstance(stat, dict):
        m, sd = stat["mean"], stat.get("std", 0.0)
        if m != m:  # NaN
            return "–"
        if pct:
            return f"{100 * m:.1f}% ± {100 * sd:.1f}"
        return f"{m:.{digits}f} ± {sd:.{digits}f}"
    return f"{stat:.{digits}f}"


def render_html(report: dict[str, Any]) -> str:
    figs = figures(report)
    e = html.escape
    parts = [             "<h1>edgeseal audit: does compression leak more or break more easily?</h1>",
             f"<p class='muted'>schema {e(report['schema'])} · created {e(report['created'])} · "
             f"{report['elapsed_s']} s · seeds {report['config']['seeds']} · "
             f"torch {e(str(report['environment'].get('torch')))}, onnxruntime "
             f"{e(str(report['environment'].get('onnxruntime')))}, opacus {e(str(report['environment'].get('opacus')))}</p>"]
    gate = report.get("gate")
    gate_rows: list[list[str]] = []
    if gate:
        status = "<span class='pass'>PASSED</span>" if gate["passed"] else "<span class='fail'>FAILED</span>"
        limits = ", ".join(f"{k} = {v}" for k, v in gate["limits"].items() if v is not None) or "none"
        parts.append(f"<h2>Gate: {status}</h2><p>{len(gate['violations'])} of {len(gate['checks'])} checks over "
                     f"the limit (limits: {e(limits)}; every check is listed at the end).</p>")
        gate_rows = [[e(c["dataset"]), e(c["artifact"]), e(c["check"]), f"{c['value']:.4f}", f"{c['limit']:.4f}",
                      "<span class='fail'>over</span>" if c["violated"] else "<span class='pass'>ok</span>"]
                     for c in gate["checks"]]
        if gate["violations"]:
            parts.append(table(["dataset", "artifact", "check", "value", "limit", ""],
                                [r for r, c in zip(gate_rows, gate["checks"]) if c["violated"]]))
    for dname, d in report["datasets"].items():
        s = d["summary"]
        parts.append(f"<h2>{e(dname)}</h2>")
        head = _headline(s)
        hname = "LiRA" if head == "lira" else head
        second = "loss" if head != "loss" else "confidence"
        refs = d.get("reference_models")
        ref_text = (f"{refs['count']} reference models (seed {refs['seed']}), {e(refs['note'])}." if refs
                    else "No reference models (threshold attacks only).")
        parts.append(f"<p class='muted'>{d['n_records']} records, {d['n_features']} features, {d['n_classes']} classes. "
                     f"{e(d.get('members_note', 'Members: half the records per seed (split seed = run seed; indices in the JSON).'))} "
                     f"{ref_text}</p>")
        rows = []
        for name, a in list(s["artifacts"].items()) + ([("combined", s["combined"])] if "combined" in s else []):
            info = a.get("info", {})
            extra = ""
            if "epsilon" in info:
                extra = f"DP ε={info['epsilon']['mean']:.2f}, δ={info['delta']['mean']:.1e}"
            elif "sparsity" in info:
                extra = f"sparsity {100 * info['sparsity']['mean']:.0f}%"
            if name == "combined":
                extra = "attacker combines " + ", ".join(s["combined"]["variants"])
            rows.append([e(name),
                         _f(a.get("accuracy"), pct=True) if "accuracy" in a else "–",
                         f"{a['size_bytes']['mean'] / 1024:.1f}" if "size_bytes" in a else "–",
                         f"{a['deflated_bytes']['mean'] / 1024:.1f}" if "deflated_bytes" in a else "–",
                         "yes" if a.get("sealed") else "no" if "sealed" in a else "–",
                         _f(a["mia"][head]["auc"]), _f(a["mia"][head]["advantage"]),
                         _f(a["mia"][head]["tpr_at_1pct_fpr"], pct=True),
                         _f(a["mia"][head]["tpr_at_0.1pct_fpr"], pct=True),
                         _f(a["mia"][second]["auc"]), e(extra)])
        parts.append("<h3>Membership inference and accuracy (mean ± std over seeds)</h3>")
        parts.append(table(["artifact", "test acc", "KiB", "KiB deflated", "sealed", f"{hname} AUC", f"{hname} adv.",
                             "TPR@1%FPR",
                             "TPR@0.1%FPR", f"{second}-attack AUC", "notes"], rows))
        parts.append(f"<img alt='ROC curves {e(dname)}' src='data:image/png;base64,{figs['roc-' + dname]}'>")
        parts.append(f"<img alt='size accuracy leakage {e(dname)}' src='data:image/png;base64,{figs['tradeoff-' + dname]}'>")
        parts.append("<h3>Adversarial robustness</h3>")
        parts.append(f"<img alt='robust accuracy {e(dname)}' src='data:image/png;base64,{figs['robust-' + dname]}'>")
        rob = s["robustness"]
        shown = [k for k in ("pgd", "transfer", "blackbox") if k in next(iter(rob["curves"].values()))]
        rows = [[e(n)] + [f"{m:.3f}" for k in shown for m in c[k]["mean"]] for n, c in rob["curves"].items()]
        eps = [f"ε={v:g}" for v in rob["epsilons"]]
        label = {"pgd": "PGD", "transfer": "transfer", "blackbox": "black-box"}
        parts.append(table(["artifact"] + [f"{label[k]} {x}" for k in shown for x in eps], rows))
        if s.get("disagreement"):
            parts.append("<h3>Artifact vs reference disagreement search</h3>")
            rows = [[e(n), str(v["start_points"]), _f(v["natural"], 2), _f(v["found"], 1), _f(v["rate"], pct=True),
                     f"{v['radius']:g}", _f(v["linf_median"])] for n, v in s["disagreement"].items()]
            parts.append(table(["artifact", "start points", "on the data itself", "found within radius",
                                 "rate", "L-inf radius", "median L-inf distance"], rows))
        if "attribution" in s:
            methods = list(next(iter(s["attribution"].values())))
            k = next(iter(next(iter(s["attribution"].values())).values()))["top_k"]
            parts.append("<h3>Explanation drift: occlusion, LIME and SHAP attributions vs the fp32 reference</h3>")
            parts.append("<p class='muted'>Spearman ρ between the artifact's and fp32's attributions of the fp32 "
                         f"class score, and the overlap of their top-{k} feature groups (mean over inputs, then "
                         "mean ± std over seeds). LIME and SHAP use the same random masks for both models.</p>")
            rows = [[e(n)] + [c for m in methods for c in (_f(per[m]["spearman_mean"]), _f(per[m]["topk_overlap_mean"]))]
                    for n, per in s["attribution"].items()]
            parts.append(table(["artifact"] + [f"{_METHOD_TITLES.get(m, m)} {h}" for m in methods
                                                for h in ("ρ", f"top-{k}")], rows))
            if f"attribution-{dname}" in figs:
                parts.append(f"<img alt='attributions {e(dname)}' "
                             f"src='data:image/png;base64,{figs['attribution-' + dname]}'>")
        else:
            parts.append("<h3>Explanation drift (occlusion attributions vs the fp32 reference)</h3>")
            rows = [[e(n), _f(v["spearman_mean"]), _f(v["top5_overlap_mean"])] for n, v in s["explanation"].items()]
            parts.append(table(["artifact", "Spearman ρ (mean over inputs)", "top-5 overlap"], rows))
    parts.append("<h2>Attacks and reproducibility</h2><ul>")
    for k, v in report["attacks"]["membership"].items():
        parts.append(f"<li><code>{e(k)}</code>: {e(v)}</li>")
    parts.append(f"<li>members: {e(report['attacks']['members'])}</li></ul>")
    if gate_rows:
        parts.append(f"<details><summary>all {len(gate_rows)} gate checks</summary>"
                     + table(["dataset", "artifact", "check", "value", "limit", ""], gate_rows) + "</details>")
    parts.append("<p class='muted'>Full configuration, splits, indices and per-seed results are in the JSON report.</p>")
    return page("edgeseal audit", parts)


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(report), encoding="utf-8")
    return p


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# edgeseal audit ({report['created']}, seeds {report['config']['seeds']}, {report['elapsed_s']} s)", ""]
    gate = report.get("gate")
    if gate:
        lines += [f"Gate: **{'PASSED' if gate['passed'] else 'FAILED'}** "
                  f"({sum(c['violated'] for c in gate['checks'])} of {len(gate['checks'])} checks over the limit)", ""]
    for dname, d in report["datasets"].items():
        s = d["summary"]
        head = _headline(s)
        hname = "LiRA" if head == "lira" else head
        second = "loss" if head != "loss" else "confidence"
        moved = "pgd" if "pgd" in next(iter(s["robustness"]["curves"].values())) else "transfer"
        mname = {"pgd": "PGD", "transfer": "transfer"}[moved]
        lines += [f"## {dname}", "", f"| artifact | test acc | KiB (deflated) | {hname} AUC | TPR@1%FPR | {second} AUC | "
                  f"{mname} acc (ε grid) | black-box acc (ε grid) | Spearman vs fp32 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n, a in s["artifacts"].items():
            c = s["robustness"]["curves"][n]
            sp = s["explanation"].get(n, {}).get("spearman_mean")
            size = f"{a['size_bytes']['mean'] / 1024:.1f}" if "size_bytes" in a else "–"
            if "deflated_bytes" in a:
                size += f" ({a['deflated_bytes']['mean'] / 1024:.1f})"
            lines.append(f"| {n} | {_f(a['accuracy'], pct=True)} | {size} | "
                         f"{_f(a['mia'][head]['auc'])} | {_f(a['mia'][head]['tpr_at_1pct_fpr'], pct=True)} | "
                         f"{_f(a['mia'][second]['auc'])} | {' / '.join(f'{v:.2f}' for v in c[moved]['mean'])} | "
                         f"{' / '.join(f'{v:.2f}' for v in c['blackbox']['mean'])} | {_f(sp) if sp else '–'} |")
        if "combined" in s:
            c = s["combined"]
            lines.append(f"| combined ({'+'.join(c['variants'])}) | – | – | {_f(c['mia'][head]['auc'])} | "
                         f"{_f(c['mia'][head]['tpr_at_1pct_fpr'], pct=True)} | {_f(c['mia'][second]['auc'])} | – | – | – |")
        lines += ["", f"ε grid: {s['robustness']['epsilons']}"]
        for n, v in s.get("disagreement", {}).items():
            lines.append(f"; {n} vs fp32 disagreements: {_f(v['found'], 1)} of {v['start_points']} start points "
                         f"within L-inf {v['radius']:g} (median distance {_f(v['linf_median'])}; "
                         f"{_f(v['natural'], 1)} on the data itself)")
        if "attribution" in s:
            methods = list(next(iter(s["attribution"].values())))
            lines += ["", "| attribution drift vs fp32 | " + " | ".join(f"{m} ρ | {m} top-k" for m in methods) + " |",
                      "|---" * (1 + 2 * len(methods)) + "|"]
            for n, per in s["attribution"].items():
                lines.append(f"| {n} | " + " | ".join(f"{_f(per[m]['spearman_mean'])} | {_f(per[m]['topk_overlap_mean'])}"
                                                      for m in methods) + " |")
        lines.append("")
    return "\n".join(lines)


class AuditReport(Report):
    """An audit report (``edgeseal.audit/1``, the dict :func:`edgeseal.audit.pipeline.run_audit` returns,
    with its ``gate``): JSON, the Markdown summary as text, and the HTML page with every plot."""

    kind = "audit"

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def passed(self) -> bool | None:
        gate = self.data.get("gate")
        return None if gate is None else bool(gate["passed"])

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def text(self) -> str:
        return render_markdown(self.data)

    def html(self) -> str:
        return render_html(self.data)
