"""Verify a sealed model on a device against the reference (``edgeseal verify``, ``verify-report``)."""

from __future__ import annotations

from .core import (
    VerifyConfig,
    VerificationReport,
    verify,
    sign_report,
    verify_report,
    add_parser,
)

__all__ = ["VerifyConfig", "VerificationReport", "verify", "sign_report", "verify_report", "add_parser"]
