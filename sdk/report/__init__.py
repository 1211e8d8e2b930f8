"""What every edgeseal report shares: signing (:mod:`.signing`) and the HTML page (:mod:`.html`).

Compress, verify, audit, release and search each build their own report object; these modules are
the one canonical-JSON signer and the one page style they all use.
"""

from __future__ import annotations

from .signing import canonical_json, sha256_hex, sign_report, verify_report

__all__ = ["canonical_json", "sha256_hex", "sign_report", "verify_report"]
