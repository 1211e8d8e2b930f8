"""The one report model (:mod:`.base`: :class:`Report`, :func:`render`, :func:`write`), the one signing
helper (:mod:`.signing`) and the one page style (:mod:`.html`) of every edgeseal report.
"""

from __future__ import annotations

from .base import FORMATS, Report, render, write
from .signing import canonical_json, sha256_hex, sign_report, verify_report

__all__ = ["Report", "FORMATS", "render", "write", "canonical_json", "sha256_hex", "sign_report", "verify_report"]
