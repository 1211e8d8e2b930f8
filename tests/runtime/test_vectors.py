"""The frozen format-v1 vectors: unchanged, reproducible, and opened/rejected exactly as described."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseal.runtime import errors
from edgeseal.runtime.format import Package

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SPEC = json.loads((VECTORS / "vectors.json").read_text())
KEYS = SPEC["keys"]


def _secret(kind: str):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    if kind == "x25519":
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS["x25519_private"]))
    if kind == "raw":
        return bytes.fromhex(KEYS["raw"])
    return KEYS["passphrase"]


def open_vector(vector: dict, kind: str) -> bytes:
    data = (VECTORS / vector["file"]).read_bytes()
    package = Package.parse(data)
    package.authenticate([bytes.fromhex(KEYS[t]) for t in vector["trusted"]], allow_unsigned=vector["allow_unsigned"])
    package.check_policy(min_version=vector["min_version"], now=KEYS["now"])
    return bytes(package.decrypt(package.content_key(_secret(kind))).view)


def test_there_are_valid_and_invalid_vectors():
    errors_named = {v.get("error") for v in SPEC["vectors"]}
    assert sum("error" not in v for v in SPEC["vectors"]) >= 4
    assert {"InvalidPackage", "UnsignedPackage", "UntrustedPublisher", "NoMatchingKey", "RollbackRejected",
            "PackageExpired"} <= errors_named


@pytest.mark.parametrize("vector", SPEC["vectors"], ids=lambda v: v["file"])
def test_vector_file_is_frozen(vector):
    assert hashlib.sha256((VECTORS / vector["file"]).read_bytes()).hexdigest() == vector["sha256"]


@pytest.mark.parametrize("vector", SPEC["vectors"], ids=lambda v: v["file"])
def test_edgeseal_reads_vector_as_described(vector):
    for kind in vector["open_with"]:
        if "error" in vector:
            with pytest.raises(getattr(errors, vector["error"])) as err:
                open_vector(vector, kind)
            assert type(err.value).__name__ == vector["error"]
        else:
            assert hashlib.sha256(open_vector(vector, kind)).hexdigest() == vector["plaintext_sha256"]


def test_generator_reproduces_vectors_byte_for_byte():
    proc = subprocess.run([sys.executable, str(VECTORS / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
