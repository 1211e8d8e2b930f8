"""The one page style of every edgeseal HTML report (audit, explanations, release, search).

Pages are self-contained: one CSS, plots inlined as base64 PNG (JPEG for photographs), no external
resource. Plots are drawn on :class:`matplotlib.figure.Figure` objects, never through pyplot, so a
report written from a notebook or an application leaves its matplotlib backend and figures alone.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Iterable

__all__ = ["CSS", "color", "figure", "image_data", "table", "page"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1320px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.86em} td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
table.search td:nth-child(3),table.search td:nth-child(10),table.search td:nth-child(11){text-align:left}
img{max-width:100%;display:block;margin:8px 0;border:1px solid #eee}
.pass{color:#1a7f37;font-weight:bold} .fail{color:#cf222e;font-weight:bold} .muted{color:#666;font-size:.85em}
tr.front{background:#fde8ea;font-weight:600} tr.miss{color:#999}
code{background:#f5f5f5;padding:1px 4px}
"""

_COLORS = {"fp32": "#222222", "int8": "#1f77b4", "pruned": "#ff7f0e", "distilled": "#2ca02c",
           "dp-sgd": "#9467bd", "pruned-advft": "#d62728", "combined": "#8c564b"}
_EXTRA = ("#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39")


def color(name: str) -> str:
    """The colour of a model or stage in every plot: fixed for the usual names, stable for others."""
    if name in _COLORS:
        return _COLORS[name]
    return _EXTRA[sum(name.encode()) % len(_EXTRA)]  # stable across runs (no hash seed)


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """A new Figure (not registered with pyplot) and its axes, as ``Figure.subplots`` returns them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplots)


def image_data(fig: Any, dpi: int = 110, *, jpeg: bool = False) -> str:
    """The figure as base64 PNG (or JPEG, for photographs); no software version in the file, so equal
    figures give equal bytes."""
    buf = io.BytesIO()
    if jpeg:
        fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches="tight", pil_kwargs={"quality": 85})
    else:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def table(head: list[str], rows: list[list[str]], cls: str = "", row_cls: list[str] | None = None) -> str:
    """An HTML table; ``head`` is escaped here, the cells are HTML already (escape text before).
    ``row_cls``: a class per row (the search page marks its Pareto front and budget misses)."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    marks = [f' class="{c}"' if c else "" for c in row_cls] if row_cls is not None else [""] * len(rows)
    body = "".join(f"<tr{m}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for m, r in zip(marks, rows))
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def page(title: str, body: Iterable[str]) -> str:
    """A whole self-contained HTML document: ``title`` (escaped here) and the body's parts, in order."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
