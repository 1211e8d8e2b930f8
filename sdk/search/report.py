"""What ``edgeseal search`` hands back: every trial, the Pareto front, and their JSON / text / PNG / HTML forms."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from pathlib import Path
from typing import Any, ClassVar

from ..config import config_to_dict
from ..report.base import Report
from .space import SearchConfig, TrialConfig

__all__ = ["TrialResult", "SearchReport"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialResult:
    """One configuration, compressed and measured. Accuracies are fractions (0..1); ``drop`` is in points.

    ``latency_p50_ms`` was measured inside the trial, next to other trials (noisy);
    ``latency_ms`` is the driver's side-by-side re-measurement, taken for budget candidates only.
    The fields after ``model`` are filled in by the driver once every trial is back.
    """

    id: int
    config: TrialConfig
    status: str  # "ok" | "error"
    seconds: float
    where: dict[str, Any]  # executor (local | ray), host, pid, Ray node id/ip, GPU ids
    device: str  # where fine-tuning ran: cpu | cuda
    error: str | None = None
    traceback: str | None = None
    size_bytes: int | None = None
    zlib_bytes: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None  # held out: reported, never used to select
    reference_val_accuracy: float | None = None  # this trial's own fp32 export (a consistency check)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    float_layers: tuple[str, ...] = ()  # nodes int8 kept in float
    warnings: tuple[str, ...] = ()
    model: bytes | None = dataclasses.field(default=None, repr=False)
    drop: float | None = None  # accuracy points below the fp32 reference (validation)
    latency_ms: float | None = None  # re-measured p50 (budget candidates only)
    budget_failures: tuple[str, ...] = ()
    meets_budget: bool = False
    on_front: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def best_latency_ms(self) -> float | None:
        """The re-measured p50 when there is one, else the in-trial one."""
        return self.latency_ms if self.latency_ms is not None else self.latency_p50_ms

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        d["config"] = self.config.to_dict()
        d["label"] = self.config.label()
        d["reference"] = self.config.is_reference
        for k in ("float_layers", "warnings", "budget_failures"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], model: bytes | None = None) -> TrialResult:
        """The inverse of :meth:`to_dict` (with the model's bytes, which the dict leaves out)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields and k != "model"}
        kwargs["config"] = TrialConfig(**d["config"])
        for k in ("float_layers", "warnings", "budget_failures"):
            kwargs[k] = tuple(kwargs.get(k, ()))
        return cls(**kwargs, model=model)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchReport(Report):
    """The whole search: its settings, every trial (id 0 is the fp32 reference) and the front's trial ids."""

    config: SearchConfig
    recipe: Any  # the base CompressRecipe
    trials: tuple[TrialResult, ...]
    front: tuple[int, ...]
    grid_size: int  # distinct configurations in the space, the fp32 reference apart
    executor: dict[str, Any]
    seconds: dict[str, float]
    notes: tuple[str, ...] = ()

    @property
    def reference(self) -> TrialResult:
        return next(t for t in self.trials if t.config.is_reference)

    def front_trials(self) -> list[TrialResult]:
        by_id = {t.id: t for t in self.trials}
        return sorted((by_id[i] for i in self.front), key=lambda t: (t.size_bytes, t.latency_ms))

    def counts(self) -> dict[str, int]:
        return {
            "trials": len(self.trials),
            "ok": sum(t.ok for t in self.trials),
            "errors": sum(not t.ok for t in self.trials),
            "meet_budget": sum(t.meets_budget for t in self.trials),
            "front": len(self.front),
        }

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "budget": self.config.budget.to_dict(),
            "config": self.config.to_dict(),
            "recipe": config_to_dict(self.recipe),
            "grid_size": self.grid_size,
            "counts": self.counts(),
            "reference": {"id": ref.id, "size_bytes": ref.size_bytes, "val_accuracy": ref.val_accuracy,
                          "test_accuracy": ref.test_accuracy, "latency_ms": ref.best_latency_ms},
            "front": [
                {"id": t.id, "label": t.config.label(), "size_bytes": t.size_bytes, "latency_ms": t.latency_ms,
                 "val_accuracy": t.val_accuracy, "test_accuracy": t.test_accuracy, "drop": t.drop,
                 "model": f"front/{self.model_name(t)}"}
                for t in self.front_trials()
            ],
            "trials": [t.to_dict() for t in self.trials],
            "executor": self.executor,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @staticmethod
    def model_name(t: TrialResult) -> str:
        return f"{t.id:03d}-{t.config.label()}.onnx"

    # ----------------------------------------------------------------------- text

    def rows(self) -> list[dict[str, str]]:
        """One row of display strings per trial: front first, then budget-meeting, then the rest."""
        order = sorted(self.trials, key=lambda t: (not t.on_front, not t.meets_budget, not t.ok, t.size_bytes or 0, t.id))
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
        out = []
        for t in order:
            lat = t.best_latency_ms
            out.append({
                "mark": "*" if t.on_front else ("ok" if t.meets_budget else ("ERR" if not t.ok else "")),
                "id": str(t.id),
                "config": ("fp32 reference" if t.config.is_reference else t.config.label()),
                "size": "-" if t.size_bytes is None else f"{t.size_bytes / 1024:.1f}",
                "val": pct(t.val_accuracy),
                "drop": "-" if t.drop is None else f"{t.drop:+.2f}",
                "test": pct(t.test_accuracy),
                "p50": "-" if lat is None else f"{lat:.4f}" + ("" if t.latency_ms is not None else "~"),
                "secs": f"{t.seconds:.1f}",
                "where": _where_short(t.where) + f" {t.device}",
                "why": t.error if not t.ok else "; ".join(t.budget_failures),
            })
        return out

    kind: ClassVar[str] = "search"

    def text(self) -> str:
        return self.render()

    def html(self) -> str:
        return self.to_html(self.plot_png())

    def render(self) -> str:
        b = self.config.budget
        ref = self.reference
        c = self.counts()
        head = (f"{'':<4}{'#':>4}  {'configuration':<42}{'KiB':>8}{'val %':>8}{'drop':>7}{'test %':>8}{'p50 ms':>10}"
                f"{'s':>7}  where / why not")
        lines = [
            f"budget: drop <= {b.max_drop:g} points (validation)"
            + (f", size <= {b.max_size_bytes:,} B" if b.max_size_bytes else "")
            + (f", p50 <= {b.max_latency_ms:g} ms" if b.max_latency_ms else ""),
            f"fp32 reference: {ref.size_bytes or 0:,} B, val {100 * (ref.val_accuracy or 0):.2f} %, "
            f"test {'-' if ref.test_accuracy is None else f'{100 * ref.test_accuracy:.2f} %'}",
            f"{c['trials']} trials (the fp32 reference and {c['trials'] - 1} of {self.grid_size} configurations), "
            f"{c['errors']} failed, "
            f"{c['meet_budget']} meet the budget, {c['front']} on the Pareto front (*); "
            f"{self.seconds.get('total', 0):.0f} s on {self.executor.get('executor')}",
            "",
            head,
            "-" * len(head),
        ]
        for r in self.rows():
            lines.append(f"{r['mark']:<4}{r['id']:>4}  {r['config']:<42}{r['size']:>8}{r['val']:>8}{r['drop']:>7}"
                         f"{r['test']:>8}{r['p50']:>10}{r['secs']:>7}  {r['where'] if r['mark'] in ('*', 'ok') else r['why']}")
        lines += ["", *(f"note: {n}" for n in self.notes)]
        return "\n".join(lines)

    # ----------------------------------------------------------------------- files

    def plot_png(self) -> bytes:
        """Size vs p50 latency, coloured by validation accuracy; the front ringed, budget misses grey."""
        import io

        from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay untouched

        fig = Figure(figsize=(8.5, 5.5), dpi=110)
        ax = fig.add_subplot()
        ok = [t for t in self.trials if t.ok]
        miss = [t for t in ok if not t.meets_budget]
        meet = [t for t in ok if t.meets_budget]
        ax.scatter([t.size_bytes / 1024 for t in miss], [t.best_latency_ms for t in miss], c="0.75", marker="x",
                   s=30, label=f"misses the budget ({len(miss)})")
        if meet:
            accs = [100 * t.val_accuracy for t in meet]
            sc = ax.scatter([t.size_bytes / 1024 for t in meet], [t.latency_ms for t in meet], c=accs, cmap="viridis",
                            s=45, edgecolors="none", label=f"meets the budget ({len(meet)})")
            fig.colorbar(sc, ax=ax, label="validation accuracy (%)")
        front = self.front_trials()
        ax.scatter([t.size_bytes / 1024 for t in front], [t.latency_ms for t in front], s=160, facecolors="none",
                   edgecolors="crimson", linewidths=1.8, label=f"Pareto front ({len(front)})")
        for t in front:
            ax.annotate(f"#{t.id} {100 * t.val_accuracy:.1f}%", (t.size_bytes / 1024, t.latency_ms), fontsize=7,
                        xytext=(6, 4), textcoords="offset points", color="crimson")
        ref = self.reference
        if ref.ok:
            ax.scatter([ref.size_bytes / 1024], [ref.best_latency_ms], marker="*", s=220, c="black", zorder=5,
                       label="fp32 reference")
        b = self.config.budget
        if b.max_size_bytes:
            ax.axvline(b.max_size_bytes / 1024, color="crimson", ls="--", lw=0.8)
        if b.max_latency_ms:
            ax.axhline(b.max_latency_ms, color="crimson", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("model size (KiB, log; codebook-encoded for clustered trials)")
        ax.set_ylabel("p50 latency, batch 1, one thread (ms)")
        ax.set_title(f"edgeseal search: {len(ok)} trials, budget drop <= {b.max_drop:g} points", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
        fig.text(0.01, 0.01, "budget candidates: latency re-measured side by side; grey: in-trial latency",
                 fontsize=7, color="0.4")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def to_html(self, png: bytes) -> str:
        from ..report.html import page, table

        esc = html.escape
        cells = ("mark", "id", "config", "size", "val", "drop", "test", "p50", "secs", "where", "why")
        heads = ["", "#", "configuration", "KiB", "val %", "drop", "test %", "p50 ms", "s", "where", "why not"]
        rows = self.rows()
        marks = ["front" if r["mark"] == "*" else ("meet" if r["mark"] == "ok" else "miss") for r in rows]
        trials = table(heads, [[esc(r[c]) for c in cells] for r in rows], cls="search", row_cls=marks)
        return page("edgeseal search", [
            "<h1>edgeseal search</h1>",
            *(f"<p>{esc(line)}</p>" for line in self.render().splitlines()[:3]),
            "<img alt=\"size vs latency of every trial, the Pareto front ringed\" "
            f"src=\"data:image/png;base64,{base64.b64encode(png).decode()}\">",
            "<h2>Trials</h2>",
            "<p>* on the Pareto front (size, latency, validation accuracy); ok: meets the budget; "
            "~: in-trial latency (not re-measured).</p>",
            trials,
            "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>",
        ])

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write search.json, pareto.png, search.html and the front's models (front/NNN-LABEL.onnx) under ``out``.

        Front models of an earlier search written to the same folder (``front/NNN-*.onnx``) are removed
        first, so ``front/`` holds this front only; other files there are left alone.
        """
        out = Path(out)
        (out / "front").mkdir(parents=True, exist_ok=True)
        for old in (out / "front").glob("[0-9][0-9][0-9]-*.onnx"):
            old.unlink()
        for t in self.front_trials():
            (out / "front" / self.model_name(t)).write_bytes(t.model)
        png = self.plot_png()
        paths = {"json": out / "search.json", "png": out / "pareto.png", "html": out / "search.html"}
        paths["json"].write_text(self.to_json() + "\n")
        paths["png"].write_bytes(png)
        paths["html"].write_text(self.to_html(png))
        return paths


def _where_short(where: dict[str, Any]) -> str:
    if where.get("executor") == "ray" and where.get("node_id"):
        return f"ray {where.get('node_ip', '?')} {where['node_id'][:8]} pid {where.get('pid', '?')}"
    if where.get("pid"):
        return f"{where.get('executor', 'local')} pid {where['pid']}"
    return str(where.get("executor", "?"))
