"""Format v2's payload pass (runtime/payload.py): digest table, one pass, parallel chunks, v1 still read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edgeseal.runtime import ConfigError, InvalidPackage, _memory, crypto, payload
from edgeseal.runtime.format import Manifest, Package, RawKeyRecipient, write_package

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
KEYS = json.loads((VECTORS / "vectors.json").read_text())["keys"]
RAW = bytes(range(32))


def _seal(data: bytes, **options) -> bytes:
    return write_package(data, Manifest(content_format="bin"), [RawKeyRecipient(RAW)], options.pop("signer", None),
                         **options)


def test_forged_chunk_passes_the_aead_and_only_the_digest_table_stops_it():
    """The vector forges chunk 1 with the content key (what any device holding a slot can do)."""
    data = (VECTORS / "v2-invalid-digest-table-mismatch.eseal").read_bytes()
    package = Package.parse(data)
    package.authenticate([bytes.fromhex(KEYS["publisher_public"])])  # the signed part is untouched
    key = package.content_key(bytes.fromhex(KEYS["raw"]))
    info = package.manifest.payload
    n = crypto.chunk_count(info.size, info.chunk_size)
    step = info.chunk_size + 16
    chunks = [bytes(package.ciphertext[i * step : (i + 1) * step]) for i in range(n)]
    for i, chunk in enumerate(chunks):  # every tag verifies: the AEAD alone would accept this file
        AESGCM(key).decrypt(crypto.chunk_nonce(info.nonce_prefix, i, i == n - 1), chunk, package.aad)
    table = bytes(package.digest_table)
    mismatched = [i for i, c in enumerate(chunks) if hashlib.sha256(c).digest() != table[32 * i : 32 * i + 32]]
    assert mismatched == [1]
    with pytest.raises(InvalidPackage):
        package.decrypt(key)


def test_v2_signature_is_checked_without_reading_the_payload():
    publisher = Ed25519PrivateKey.generate()
    data = bytearray(_seal(os.urandom(5000), signer=publisher, chunk_size=1024))
    package = Package.parse(bytes(data))
    ct_start = len(data) - len(package.ciphertext)
    assert package.signature.signed_len + 64 + 8 == ct_start  # signature, ct_len, then the ciphertext
    data[ct_start + 10] ^= 1  # a damaged payload still authenticates: the signature never reads it ...
    damaged = Package.parse(bytes(data))
    damaged.authenticate([crypto.raw_public(publisher.public_key())])
    with pytest.raises(InvalidPackage):  # ... and the digest table catches it before the AEAD runs
        damaged.decrypt(damaged.content_key(RAW))


class _CountingCipher:
    """Stands in for a Cipher: the real AES-GCM, counting the chunks it is asked to decrypt."""

    def __init__(self) -> None:
        self.calls = 0

    def aead(self, key: bytes):
        real, outer = AESGCM(key), self

        class Counting:
            def decrypt_into(self, *args):
                outer.calls += 1
                return real.decrypt_into(*args)

        return Counting()


def test_a_chunk_whose_digest_mismatches_is_never_decrypted():
    data = _seal(b"edgeseal" * 1000, chunk_size=1024)  # 8 chunks
    package = Package.parse(data)
    info, key = package.manifest.payload, package.content_key(RAW)
    table = bytearray(package.digest_table)
    counting = _CountingCipher()
    payload.decrypt(counting, info.digest, key, info.nonce_prefix, 1024, package.ciphertext, info.size,
                    package.aad, bytes(table), threads=1)
    assert counting.calls == 8
    table[3 * 32] ^= 1
    counting = _CountingCipher()
    with pytest.raises(InvalidPackage):
        payload.decrypt(counting, info.digest, key, info.nonce_prefix, 1024, package.ciphertext, info.size,
                        package.aad, bytes(table), threads=1)
    assert counting.calls == 3  # chunks 0-2 decrypted, chunk 3 refused, nothing after it


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_parallel_pass_equals_serial_and_wipes_on_failure(cipher, monkeypatch):
    plain = os.urandom(9 * 2**20 + 77)  # above PARALLEL_MIN_BYTES, 10 chunks of 1 MiB
    package = Package.parse(_seal(plain, cipher=cipher))
    info, key = package.manifest.payload, package.content_key(RAW)
    assert info.digest is payload.default_digest(crypto.Cipher(cipher))
    args = (info.cipher, info.digest, key, info.nonce_prefix, info.chunk_size)
    for threads in (1, 2, 4):
        out = payload.decrypt(*args, package.ciphertext, info.size, package.aad, package.digest_table,
                              threads=threads)
        assert bytes(out.view) == plain
    wiped = []
    real_wipe = _memory.PlainBuffer.wipe

    def recording_wipe(self):
        real_wipe(self)
        wiped.append(bytes(self.view) == bytes(len(self.view)))

    monkeypatch.setattr(_memory.PlainBuffer, "wipe", recording_wipe)
    damaged = bytearray(package.ciphertext)
    damaged[9 * (2**20 + 16) + 5] ^= 1  # the last chunk
    with pytest.raises(InvalidPackage):
        payload.decrypt(*args, memoryview(damaged), info.size, package.aad, package.digest_table, threads=2)
    assert wiped == [True]


def test_writer_choices_and_their_errors():
    assert Package.parse(_seal(b"x" * 10)).manifest.payload.digest is payload.Digest.BLAKE3
    chacha = Package.parse(_seal(b"x" * 10, cipher="chacha20-poly1305"))
    assert chacha.manifest.payload.digest is payload.Digest.BLAKE3 and chacha.header.version == 2
    older = Package.parse(_seal(b"x" * 10, cipher="chacha20-poly1305", digest="blake2b-256"))
    assert older.manifest.payload.digest is payload.Digest.BLAKE2B_256
    crossed = Package.parse(_seal(b"x" * 10, cipher="chacha20-poly1305", digest="sha-256"))
    assert crossed.manifest.payload.digest is payload.Digest.SHA256
    v1 = Package.parse(_seal(b"x" * 10, version=1))
    assert v1.header.version == 1 and v1.digest_table is None and v1.manifest.payload.digest is None
    assert b"chunk_digest" not in v1.manifest_bytes
    with pytest.raises(ConfigError, match="v1 has no chunk digests"):
        _seal(b"x", version=1, digest="sha-256")
    with pytest.raises(ConfigError, match="unknown chunk digest 'md5'"):
        _seal(b"x", digest="md5")
    with pytest.raises(ConfigError, match="format version"):
        _seal(b"x", version=3)


# BLAKE3 of the empty input, from the BLAKE3 reference's test_vectors.json: a known answer that does not
# come from the library edgeseal uses.
BLAKE3_EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_digest_table_entries_are_the_spec_digests():
    from blake3 import blake3

    assert payload.chunk_digest(payload.Digest.BLAKE3, b"").hex() == BLAKE3_EMPTY
    for cipher, name, digest in (
            ("aes-256-gcm", None, lambda c: blake3(c).digest()),
            ("chacha20-poly1305", None, lambda c: blake3(c).digest()),
            ("aes-256-gcm", "sha-256", lambda c: hashlib.sha256(c).digest()),
            ("chacha20-poly1305", "blake2b-256", lambda c: hashlib.blake2b(c, digest_size=32).digest())):
        package = Package.parse(_seal(os.urandom(2500), cipher=cipher, chunk_size=1024, digest=name))
        ct, table = bytes(package.ciphertext), bytes(package.digest_table)
        chunks = [ct[i : i + 1040] for i in range(0, len(ct), 1040)]
        assert len(chunks) == 3 and table == b"".join(digest(c) for c in chunks)


def test_large_buffers_ask_for_huge_pages_inside_their_own_storage(monkeypatch):
    calls = []
    monkeypatch.setattr(_memory, "_madvise", lambda start, length, advice: calls.append((start, length, advice)))
    buf = _memory.PlainBuffer(9 * 2**20 + 3)
    (start, length, advice), = calls
    data_start = id(buf.data) + _memory._BYTES_DATA_OFFSET
    assert advice == 14 and start % 2**21 == 0 and length % 2**21 == 0 and length >= 2 * 2**21
    assert data_start <= start and start + length <= data_start + 9 * 2**20 + 3
    calls.clear()
    _memory.PlainBuffer(2**20)  # small buffers are left alone
    assert calls == []


def test_read_file_returns_the_whole_file_even_if_it_changes_size(tmp_path):
    data = os.urandom(5 * 2**20 + 11)
    path = tmp_path / "package.eseal"
    path.write_bytes(data)
    with path.open("rb", buffering=0) as f:
        got = _memory.read_file(f, len(data), 2**30)
    assert type(got) is bytes and got == data
    for claimed in (len(data) - 4096, len(data) + 4096, 0):  # stat said otherwise: still exactly the file
        with path.open("rb", buffering=0) as f:
            assert _memory.read_file(f, claimed, 2**30) == data
    with path.open("rb", buffering=0) as f:  # never more than limit + 1 bytes, so a caller sees "too big"
        assert _memory.read_file(f, len(data), 1000) == data[:1001]


def test_inspect_reports_the_format_version(tmp_path, capsys):
    from edgeseal import cli
    from edgeseal.runtime import inspect

    for version in (1, 2):
        data = _seal(b"weights" * 100, version=version)
        info = inspect(data)
        assert info.format_version == version and info.to_dict()["format_version"] == version
        path = tmp_path / f"v{version}.eseal"
        path.write_bytes(data)
        assert cli.main(["inspect", str(path)]) == 0
        assert f"bytes, format v{version}\n" in capsys.readouterr().out


def test_readme_and_results_page_state_the_recorded_seal_load_figures():
    """README's sealed-vs-plain table and bench/results/seal_load.md are the figures of seal_load.json."""
    import re
    import sys

    root = Path(__file__).resolve().parents[2]
    result = json.loads((root / "bench" / "results" / "seal_load.json").read_text())
    sys.path.insert(0, str(root / "bench"))
    try:
        import seal_load
    finally:
        sys.path.remove(str(root / "bench"))
    assert (root / "bench" / "results" / "seal_load.md").read_text() == seal_load.render(result)
    readme = (root / "README.md").read_text()
    load = {x["model"]: x for x in result["load"]}
    run = {x["model"]: x for x in result["run"]}

    def row(label: str) -> list[str]:
        match = re.search(r"^\| " + re.escape(label) + r" \| ([^|]+) \| ([^|]+) \|", readme, re.M)
        assert match, label
        return [cell.strip().strip("*").removesuffix(" ms").removesuffix(" µs") for cell in match.groups()]

    models = ("minilm-fp32", "minilm-int8")
    assert row("load: `InferenceSession(bytes)`") == [str(load[m]["plain_load_ms_median"]) for m in models]
    assert row("load: `edgeseal.load`, format v2 (what `seal` writes)") == [
        str(load[m]["sealed_v2"]["load_ms_median"]) for m in models]
    assert row("sealed ÷ plain load, v2") == [str(load[m]["sealed_v2"]["ratio_over_plain"]) for m in models]
    assert row("sealed ÷ plain load, v2, in CPU time") == [
        str(load[m]["sealed_v2"]["cpu_ratio_over_plain"]) for m in models]
    assert row("sealed ÷ plain load, v1 (the previous format, same run)") == [
        str(load[m]["sealed_v1"]["ratio_over_plain"]) for m in models]
    assert row("steady-state `run`, sealed ÷ bare (batch 1, 32 tokens)") == [
        str(run[m]["ratio_sealed_over_bare_sessions"]) for m in models]
