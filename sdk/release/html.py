"""The release summary page: one self-contained HTML file (plots inlined as PNG, no external
resource) built from ``release.json`` alone, so an unchanged release renders byte for byte the same.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..report.html import color, figure, image_data, page, table

__all__ = ["figures", "render_html", "write_html"]


def _stage_rows(release: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(target, stage label, numbers) for every compression stage, the sealed package and the device."""
    rows = []
    for name, t in release["targets"].items():
        for s in t.get("stages", []):
            rows.append((name, s["stage"], {"bytes": s["size_bytes"], "accuracy": s["eval_accuracy"], "p50": s["p50_ms"]}))
        v = t.get("verification") or {}
        if v.get("reference_accuracy") is not None:
            rows.append((name, "fp32 on test (host)", {"bytes": None, "accuracy": v["reference_accuracy"], "p50": None}))
        if t.get("package"):
            rows.append((name, "sealed, on device", {"bytes": t["package"]["bytes"], "accuracy": v.get("device_accuracy"),
                                                      "p50": v.get("p50_ms")}))
    return rows


def figures(release: dict[str, Any]) -> dict[str, str]:
    """``{id: base64 PNG}``: size, accuracy and latency per target and stage; leakage per target."""

    out: dict[str, str] = {}
    targets = list(release["targets"])
    rows = _stage_rows(release)
    if rows:
        stages = list(dict.fromkeys(label for _, label, _ in rows))
        fig, axes = figure(1, 3, figsize=(15, 4.2))
        width = 0.8 / max(len(stages), 1)
        for ax, (metric, title, scale) in zip(axes, (("bytes", "model size (KiB)", 1 / 1024),
                                                      ("accuracy", "accuracy (%): stages on eval; fp32 and device on test", 100),
                                                      ("p50", "latency p50 (ms, batch 1): host per stage, device", 1))):
            for i, stage in enumerate(stages):
                xs, ys = [], []
                for j, name in enumerate(targets):
                    hit = [v for t, label, v in rows if t == name and label == stage]
                    if hit and hit[0][metric] is not None:  # (a stage without this number gets no bar)
                        xs.append(j + (i - (len(stages) - 1) / 2) * width)
                        ys.append(hit[0][metric] * scale)
                ax.bar(xs, ys, width=width, label=stage, color=color(stage))
            ax.set_xticks(range(len(targets)), targets)
            ax.set_title(title, fontsize=10)
            if metric == "accuracy":
                vals = [v[metric] * 100 for _, _, v in rows if v[metric] is not None]
                if vals:
                    ax.set_ylim(max(0.0, min(vals) - 3), min(100.5, max(vals) + 1))
            if metric == "p50":
                ax.set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        out["stages"] = image_data(fig, dpi=100)
    audited = {n: t["audit"] for n, t in release["targets"].items() if t.get("audit")}
    if audited:
        fig, axes = figure(1, 2, figsize=(12, 4))
        attacks = list(next(iter(audited.values()))["mia_auc"])
        width = 0.8 / (2 * len(attacks))
        for k, atk in enumerate(attacks):
            for m, who in enumerate(("fp32", "package")):
                i = 2 * k + m
                xs = [j + (i - (2 * len(attacks) - 1) / 2) * width for j in range(len(audited))]
                axes[0].bar(xs, [a["mia_auc"][atk][who] for a in audited.values()], width=width,
                            label=f"{atk} attack, {who}", color=color("fp32" if who == "fp32" else "int8"),
                            alpha=1.0 if k == 0 else 0.55)
        axes[0].axhline(0.5, color="#888", lw=0.8, ls="--")
        axes[0].set_xticks(range(len(audited)), list(audited))
        axes[0].set_ylim(0.4, max(0.75, max(a["mia_auc"][atk][w] for a in audited.values() for atk in attacks
                                            for w in ("fp32", "package")) + 0.05))
        axes[0].set_title("membership-inference AUC (0.5 = no leakage)", fontsize=10)
        axes[0].legend(fontsize=8)
        for i, (name, a) in enumerate(audited.items()):
            curves = a["robust_accuracy"]
            for who in (("fp32", name) if i == 0 else (name,)):  # the fp32 model is the same for every target
                attack = "blackbox" if "blackbox" in curves[who] else next(iter(curves[who]))
                axes[1].plot(a["epsilons"], [100 * v for v in curves[who][attack]], "--" if who == "fp32" else "-",
                             marker="o", color=color(who), label="fp32" if who == "fp32" else f"{name} package")
        axes[1].set_xlabel("L-inf epsilon")
        axes[1].set_title("accuracy under black-box attack (%)", fontsize=10)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        out["audit"] = image_data(fig, dpi=100)
    return out


def _num(v: Any, fmt: str = "{:.4f}") -> str:
    return "-" if v is None else fmt.format(v)


def render_html(release: dict[str, Any]) -> str:
    e = html.escape
    figs = figures(release)
    verdict = '<span class="pass">PASSED</span>' if release["passed"] else '<span class="fail">FAILED</span>'
    parts = [             f"<h1>{e(release['name'])} v{release['version']}: {verdict}</h1>",
             f"<p class='muted'>publisher {e(release['publisher'])} · fp32 ONNX {release['fp32']['onnx_bytes']:,} bytes, "
             f"sha256 <code>{release['fp32']['sha256'][:16]}…</code> · budget {release['budget']['max_drop_points']} "
             f"accuracy points · code {e(release['code'])}</p>"]
    rows = []
    for name, t in release["targets"].items():
        v, p, a = t.get("verification") or {}, t.get("package") or {}, t.get("audit") or {}
        mia = a.get("mia_auc", {}).get("loss", {})
        rows.append([e(name), '<span class="pass">ok</span>' if t["passed"] else '<span class="fail">FAIL</span>',
                     e(t["device"]), e(v.get("machine", "-")), e(v.get("backend", "-")),
                     _num(p.get("bytes"), "{:,}"), e(p.get("cipher", "-")), _num(v.get("device_accuracy")),
                     _num(v.get("agreement_with_host")), _fidelity_cell(v.get("fidelity")), _num(v.get("p50_ms"), "{:.3f}"),
                     _num(v.get("load_seconds"), "{:.3f}"), _num(v.get("peak_rss_mb"), "{:.1f}"),
                     f"{_num(mia.get('fp32'), '{:.3f}')} → {_num(mia.get('package'), '{:.3f}')}" if mia else "-"])
    parts.append("<h2>Targets</h2>")
    parts.append(table(["target", "verdict", "device", "machine", "runtime", "package bytes", "cipher", "device acc",
                         "agreement w/ host", "fidelity to fp32 (agreement / top-5 / SQNR)", "p50 ms", "load s", "peak MiB", "MIA AUC (loss) fp32 → package"], rows))
    if "stages" in figs:
        parts.append("<h2>Size, accuracy, latency per target and stage</h2>")
        parts.append(f"<img alt='stages' src='data:image/png;base64,{figs['stages']}'>")
    if "audit" in figs:
        parts.append("<h2>Leakage and robustness of each package vs the fp32 model</h2>")
        parts.append(f"<img alt='audit' src='data:image/png;base64,{figs['audit']}'>")
    parts.append("<h2>Checks</h2>")
    checks = [[e(n), e(c["name"]), '<span class="pass">ok</span>' if c["passed"] else '<span class="fail">FAIL</span>',
               e(c["detail"])] for n, t in release["targets"].items() for c in t["checks"]]
    parts.append(table(["target", "check", "", "detail"], checks))
    parts.append("<h2>Files</h2>")
    files = [[f"<code>{e(path)}</code>", f"<code>{digest}</code>"]
             for t in release["targets"].values() for path, digest in t.get("files", {}).items()]
    parts.append(table(["file", "sha256"], files))
    parts.append("<p class='muted'>Check a report: <code>edgeseal verify-report TARGET/verification.json --trusted "
                 "publisher.pub</code>. The packages open only with the device keys they were sealed for.</p>")
    return page(f"{release['name']} release", parts)


def write_html(release: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(render_html(release), encoding="utf-8")
    return p


def _fidelity_cell(f: dict | None) -> str:
    """Top-1 agreement / top-5 overlap / logit SQNR of the device's outputs against fp32 (verify's fidelity)."""
    if not f:
        return "-"
    sq = "identical" if f.get("sqnr_db") is None else f"{f['sqnr_db']:.1f} dB"
    return f"{f['top1_agreement']:.4f} / {f['top5_overlap']:.4f} / {sq}"
