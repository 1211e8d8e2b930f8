"""The one report model: every verb's report is a :class:`Report` — its JSON form, its text for people
and its self-contained HTML page — and :func:`render` / :func:`write` turn any report into any form.

=========  ==========================================  =========================================
kind       class                                       made by
=========  ==========================================  =========================================
compress   :class:`edgeseal.compress.CompressReport`   ``edgeseal compress`` / ``compress()``
verify     :class:`edgeseal.verify.VerificationReport` ``edgeseal verify`` / ``verify()``
audit      :class:`edgeseal.audit.AuditReport`         ``edgeseal audit`` / ``AuditReport.run()``
release    :class:`edgeseal.release.BuildResult`       ``edgeseal build``, ``edgeseal demo``
search     :class:`edgeseal.search.SearchReport`       ``edgeseal search`` / ``search()``
=========  ==========================================  =========================================

Signed reports (verification, audit, release reports written by ``build``) are canonical JSON with a
detached signature (:mod:`edgeseal.report.signing`); ``edgeseal verify-report`` checks any of them.
"""

from __future__ import annotations

import abc
import html as _html
import json
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Report", "FORMATS", "render", "write"]

FORMATS = ("json", "text", "html")
_SUFFIXES = {".json": "json", ".txt": "text", ".md": "text", ".html": "html", ".htm": "html"}


class Report(abc.ABC):
    """What every report has. Subclasses set ``kind`` and give ``to_dict`` and ``text``; ``html``
    defaults to a page of the text and the JSON, in the one page style (:mod:`edgeseal.report.html`)."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every figure the text and the page show, and more."""

    @abc.abstractmethod
    def text(self) -> str:
        """The plain-text form for a terminal."""

    @property
    def title(self) -> str:
        return f"edgeseal {self.kind}"

    def html(self) -> str:
        from .html import page

        e = _html.escape
        return page(self.title, [
            f"<h1>{e(self.title)}</h1>",
            f"<pre>{e(self.text())}</pre>",
            "<details><summary>the JSON report</summary>"
            f"<pre>{e(json.dumps(self.to_dict(), indent=2, default=str))}</pre></details>",
        ])


def render(report: Report, fmt: str = "text") -> str:
    """``report`` as ``json`` (indented), ``text`` or ``html``."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    if fmt == "text":
        return report.text() + "\n"
    if fmt == "html":
        return report.html()
    raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")


def write(report: Report, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``report`` to ``path`` in ``fmt``, else in the form its suffix names (.json, .txt/.md, .html)."""
    path = Path(path)
    if fmt is None:
        fmt = _SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: give fmt= or a .json, .txt, .md or .html name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, fmt), encoding="utf-8")
    return path
