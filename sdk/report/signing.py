"""One signing helper for every report: canonical JSON bytes with a detached Ed25519 signature.

``sign_report`` returns the exact bytes to write and the ``.sig`` record over them;
``verify_report`` (``edgeseal verify-report``) checks any such pair — a verification, audit
or release report alike — against trusted publisher keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError, InvalidPackage

__all__ = ["canonical_json", "sha256_hex", "sign_report", "verify_report"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The bytes a report is signed as: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign_report(report: dict[str, Any], publisher: Any, passphrase: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Canonical JSON bytes of ``report`` and the detached signature record over exactly those bytes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..runtime import crypto
    from ..runtime.keys import load_private_key

    key = publisher if isinstance(publisher, Ed25519PrivateKey) else load_private_key(Path(publisher), passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("reports are signed with the publisher (Ed25519) key, not a device key")
    body = canonical_json(report)
    public = crypto.raw_public(key.public_key())
    return body, {
        "algorithm": "ed25519",
        "publisher": crypto.publisher_fingerprint(public),
        "sha256": sha256_hex(body),
        "signature": base64.b64encode(key.sign(body)).decode(),
    }


def verify_report(report_path: str | Path, trusted: Any, signature_path: str | Path | None = None) -> dict[str, Any]:
    """Check a report's detached signature against trusted publisher keys; return the report dict."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..runtime import crypto
    from ..runtime.keys import resolve_trusted

    report_path = Path(report_path)
    signature_path = Path(signature_path or f"{report_path}.sig")
    try:
        body = report_path.read_bytes()
        record = json.loads(signature_path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} does not exist (a report needs its .sig next to it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidPackage(f"{signature_path} is not a signature record") from None
    keys = resolve_trusted(trusted)
    if not keys:
        raise ConfigError("give the publisher's public key (--trusted) to check the report against")
    try:
        signature = base64.b64decode(record["signature"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise InvalidPackage(f"{signature_path} is not a signature record") from None
    for raw in keys:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, body)
        except InvalidSignature:
            continue
        report = json.loads(body)
        report["_signature"] = {"publisher": crypto.publisher_fingerprint(raw), "valid": True}
        return report
    raise InvalidPackage(
        f"the signature of {report_path} does not verify with the trusted key(s): the report was changed "
        "after signing, or signed by another publisher"
    )
