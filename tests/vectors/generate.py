"""Generate the frozen test vectors, format v1 and v2 (released vectors never change; new ones may be added).

    python tests/vectors/generate.py            # writes *.eseal and vectors.json here
    python tests/vectors/generate.py --check    # regenerates in memory and compares byte for byte

All randomness comes from fixed seeds through edgeseal.runtime.format._seal_from_parts,
so the output is reproducible. Keys are derived from fixed labels and published in
vectors.json: these are test keys, never use them for anything else.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from edgeseal.runtime.format import (
    Codec,
    DeviceRecipient,
    Manifest,
    PassphraseRecipient,
    RawKeyRecipient,
)
from edgeseal.runtime.format import Package
from edgeseal.runtime.format import _seal_from_parts as _seal_any_version
from edgeseal.runtime.tensors import QuantParams, TensorSpec

HERE = Path(__file__).resolve().parent
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = 1_785_000_000  # the "current time" readers use when checking these vectors


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"edgeseal test vector key: " + label.encode()).digest()


def _raw_private(key) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _raw_public(key) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


PUBLISHER = Ed25519PrivateKey.from_private_bytes(_seed("publisher"))
OTHER_PUBLISHER = Ed25519PrivateKey.from_private_bytes(_seed("other publisher"))
DEVICE = X25519PrivateKey.from_private_bytes(_seed("device"))
OTHER_DEVICE = X25519PrivateKey.from_private_bytes(_seed("other device"))
RAW = _seed("raw key")
PASSPHRASE = "correct horse battery staple"
PAYLOAD = b"".join(b"edgeseal format v1 test payload, line %04d\n" % i for i in range(70))  # 3010 bytes


def _manifest(**changes) -> Manifest:
    fields = dict(
        content_format="bin",
        name="vector",
        model_version=2,
        inputs=(TensorSpec(name="x", dtype="float32", shape=(None, 4)),),
        outputs=(TensorSpec(name="y", dtype="int8", shape=(None, 2)),),
        created_at=CREATED,
        producer="edgeseal-test-vectors/1",
    )
    fields.update(changes)
    return Manifest(**fields)


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def build() -> list[tuple[dict, bytes]]:
    """(description, file bytes) for every vector, in a fixed order."""
    return build_v1() + build_v2() + build_v2_blake3()


def build_v1() -> list[tuple[dict, bytes]]:
    """The format-v1 vectors, released first; writers now default to v2, so v1 is asked for."""
    _seal_from_parts = functools.partial(_seal_any_version, version=1)
    device_slot, raw_slot = DeviceRecipient(_raw_public(DEVICE)), RawKeyRecipient(RAW)
    v = []

    signed = _seal_from_parts(PAYLOAD, _manifest(), [device_slot, raw_slot], PUBLISHER, seed=b"v1", chunk_size=1024)
    v.append(({"name": "valid-aes-x25519-raw-signed", "open_with": ["x25519", "raw"]}, signed))

    chacha = _seal_from_parts(PAYLOAD, _manifest(expires_at=NOW + 10**8), [PassphraseRecipient(PASSPHRASE, log2_n=10)],
                              PUBLISHER, seed=b"v2", cipher="chacha20-poly1305", codec=Codec.ZLIB, chunk_size=1024)
    v.append(({"name": "valid-chacha-passphrase-zlib-signed", "open_with": ["passphrase"]}, chacha))

    empty = _seal_from_parts(b"", _manifest(content_format="npz", kind="dataset", inputs=(), outputs=()),
                             [raw_slot], None, seed=b"v3")
    v.append(({"name": "valid-empty-unsigned-raw", "open_with": ["raw"], "allow_unsigned": True}, empty))

    unsigned = _seal_from_parts(PAYLOAD, _manifest(), [raw_slot], None, seed=b"v4", chunk_size=1024)
    v.append(({"name": "valid-unsigned-3-chunks", "open_with": ["raw"], "allow_unsigned": True}, unsigned))

    def bad(name: str, data: bytes, error: str, **extra) -> None:
        v.append(({"name": name, "error": error, "open_with": ["x25519"], **extra}, data))

    mlen = struct.unpack(">I", signed[12:16])[0]
    bad("invalid-magic", _patch(signed, 1, b"F"), "InvalidPackage")
    bad("invalid-version-2", _patch(signed, 8, b"\x00\x02"), "InvalidPackage")
    bad("invalid-flags", _patch(signed, 10, b"\x00\x01"), "InvalidPackage")
    bad("invalid-manifest-edited", signed.replace(b'"model_version":2', b'"model_version":9'), "InvalidPackage")
    bad("invalid-payload-bit-flip", _patch(signed, len(signed) - 97 - 100, bytes([signed[-197] ^ 0x01])),
        "InvalidPackage")
    bad("invalid-truncated-in-payload", signed[: 16 + mlen + 500], "InvalidPackage")
    bad("invalid-trailing-byte", signed + b"\x00", "InvalidPackage")
    bad("invalid-signature-bit-flip", _patch(signed, len(signed) - 1, bytes([signed[-1] ^ 0x80])), "InvalidPackage")
    bad("invalid-signature-stripped", signed[: len(signed) - 97] + b"\x00", "UnsignedPackage")
    resigned = _seal_from_parts(PAYLOAD, _manifest(), [device_slot], OTHER_PUBLISHER, seed=b"v5", chunk_size=1024)
    bad("invalid-untrusted-publisher", resigned, "UntrustedPublisher")
    other = _seal_from_parts(PAYLOAD, _manifest(), [DeviceRecipient(_raw_public(OTHER_DEVICE))], PUBLISHER,
                             seed=b"v6", chunk_size=1024)
    bad("invalid-no-slot-for-key", other, "NoMatchingKey")
    old = _seal_from_parts(PAYLOAD, _manifest(model_version=1), [device_slot], PUBLISHER, seed=b"v7")
    bad("invalid-below-version-floor", old, "RollbackRejected", min_version=2)
    expired = _seal_from_parts(PAYLOAD, _manifest(expires_at=NOW - 1), [device_slot], PUBLISHER, seed=b"v8")
    bad("invalid-expired", expired, "PackageExpired")

    # Unsigned packages: the AEAD alone must catch these.
    ct_start = len(unsigned) - 1 - (len(PAYLOAD) + 16 * 3)
    c0, c1 = ct_start, ct_start + 1024 + 16
    swapped = unsigned[:c0] + unsigned[c1 : c1 + 1040] + unsigned[c0:c1] + unsigned[c1 + 1040 :]
    bad("invalid-unsigned-chunks-swapped", swapped, "InvalidPackage", open_with=["raw"], allow_unsigned=True)
    bad("invalid-unsigned-manifest-edited", unsigned.replace(b'"name":"vector"', b'"name":"vectoR"'),
        "InvalidPackage", open_with=["raw"], allow_unsigned=True)
    bad("invalid-unsigned-wrapped-key-bit-flip", _patch(unsigned, 16 + mlen + 2 + 3 + 40, bytes([unsigned[16 + mlen + 45] ^ 4])),
        "InvalidPackage", open_with=["raw"], allow_unsigned=True)
    # Manifest rules made exact in issue 11 (docs/format.md §2.1): each file is signed by PUBLISHER over a
    # manifest a strict reader must refuse; the AEAD data is consistent with it, so only the manifest is wrong.
    def manifest_edit(name: str, edit, *, seed: bytes) -> None:
        def rewrite(text: bytes) -> bytes:
            d = json.loads(text)
            tokens: dict[str, str] = {}
            edit(d, tokens)
            out = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            for marker, token in tokens.items():
                out = out.replace(json.dumps(marker), token)
            return out.encode("utf-8", "surrogatepass")

        data = _seal_from_parts(PAYLOAD, _manifest(), [device_slot], PUBLISHER, seed=seed, chunk_size=1024,
                                _edit_manifest=rewrite)
        if name.startswith("valid-"):
            v.append(({"name": name, "open_with": ["x25519"]}, data))
        else:
            bad(name, data, "InvalidPackage")

    def nested(levels: int):
        value: object = []
        for _ in range(levels - 1):
            value = [value]
        return value

    def token(d: dict, key: str, text: str, tokens: dict, *, inside: str | None = None) -> None:
        marker = f"@token{len(tokens)}@"
        (d[inside] if inside else d)[key] = marker
        tokens[marker] = text

    # the top-level object is level 1, so a member holding 63 nested arrays reaches level 64: the limit
    manifest_edit("valid-manifest-64-levels-unknown-member",
                  lambda d, t: d.update(x_future_member=nested(63)), seed=b"m0")
    manifest_edit("invalid-manifest-65-levels", lambda d, t: d.update(x_future_member=nested(64)), seed=b"m1")
    manifest_edit("invalid-manifest-number-overflows-double",
                  lambda d, t: token(d, "x", "1e400", t, inside="compression"), seed=b"m2")
    manifest_edit("invalid-manifest-nan-literal",
                  lambda d, t: token(d, "x", "NaN", t, inside="compression"), seed=b"m3")
    manifest_edit("invalid-manifest-integer-beyond-int64",
                  lambda d, t: token(d, "x", "18446744073709551616", t, inside="compression"), seed=b"m4")
    manifest_edit("invalid-manifest-missing-producer", lambda d, t: d.pop("producer"), seed=b"m5")
    manifest_edit("invalid-manifest-target-not-a-string", lambda d, t: d.update(target=3), seed=b"m6")
    manifest_edit("invalid-manifest-boolean-version", lambda d, t: d.update(model_version=True), seed=b"m7")
    manifest_edit("invalid-manifest-fractional-dimension",
                  lambda d, t: d["inputs"][0].update(shape=[None, 4.5]), seed=b"m8")
    manifest_edit("invalid-manifest-lone-surrogate", lambda d, t: token(d, "name", '"vector\\ud800"', t), seed=b"m9")
    manifest_edit("invalid-manifest-metadata-not-a-string", lambda d, t: d.update(metadata={"k": 1}), seed=b"ma")
    manifest_edit("invalid-manifest-expires-at-created",
                  lambda d, t: d.update(expires_at=d["created_at"]), seed=b"mb")
    manifest_edit("invalid-manifest-duplicate-member",
                  lambda d, t: token(d, "name", '"vector","name":"vector"', t), seed=b"mc")

    # Tensor specs beyond the first writers' (format.md §2.2): every kind, unknown rank, optional feeds,
    # dtypes NumPy lacks, per-channel quantization.
    specs = _manifest(inputs=TENSOR_SPECS_IN, outputs=TENSOR_SPECS_OUT)
    every_spec = _seal_from_parts(PAYLOAD, specs, [device_slot], PUBLISHER, seed=b"t1", chunk_size=1024)
    v.append(({"name": "valid-tensor-specs-every-kind", "open_with": ["x25519"]}, every_spec))
    return [({**meta, "format_version": 1}, data) for meta, data in v]


def _v2_offsets(data: bytes) -> tuple[int, int]:
    """(start of the digest table, start of the ciphertext) in a v2 file."""
    package = Package.parse(data)
    ct_start = len(data) - len(package.ciphertext)
    sig_alg_at = ct_start - 8 - (1 if package.signature is None else 97)
    return sig_alg_at - len(package.digest_table), ct_start


def build_v2() -> list[tuple[dict, bytes]]:
    """Format v2: a signed table of per-chunk digests, signature before the payload (docs/format.md §10)."""
    seal = functools.partial(_seal_any_version, version=2)
    device_slot, raw_slot = DeviceRecipient(_raw_public(DEVICE)), RawKeyRecipient(RAW)
    v = []
    # The digests are named: these vectors were released when SHA-256 (AES) and BLAKE2b (ChaCha) were the
    # writers' defaults, and released vectors never change (BLAKE3 ones: build_v2_blake3).
    signed = seal(PAYLOAD, _manifest(), [device_slot, raw_slot], PUBLISHER, seed=b"2v1", chunk_size=1024,
                  digest="sha-256")
    v.append(({"name": "v2-valid-aes-sha256-x25519-raw-signed", "open_with": ["x25519", "raw"]}, signed))
    chacha = seal(PAYLOAD, _manifest(expires_at=NOW + 10**8), [PassphraseRecipient(PASSPHRASE, log2_n=10)],
                  PUBLISHER, seed=b"2v2", cipher="chacha20-poly1305", codec=Codec.ZLIB, chunk_size=1024,
                  digest="blake2b-256")
    v.append(({"name": "v2-valid-chacha-blake2b-passphrase-zlib-signed", "open_with": ["passphrase"]}, chacha))
    crossed = seal(PAYLOAD, _manifest(), [raw_slot], PUBLISHER, seed=b"2v3", cipher="chacha20-poly1305",
                   digest="sha-256", chunk_size=1024)
    v.append(({"name": "v2-valid-chacha-sha256-raw-signed", "open_with": ["raw"]}, crossed))
    empty = seal(b"", _manifest(content_format="npz", kind="dataset", inputs=(), outputs=()), [raw_slot], None,
                 seed=b"2v4", digest="sha-256")
    v.append(({"name": "v2-valid-empty-unsigned-raw", "open_with": ["raw"], "allow_unsigned": True}, empty))
    unsigned = seal(PAYLOAD, _manifest(), [raw_slot], None, seed=b"2v5", chunk_size=1024, digest="sha-256")
    v.append(({"name": "v2-valid-unsigned-3-chunks", "open_with": ["raw"], "allow_unsigned": True}, unsigned))

    def bad(name: str, data: bytes, error: str, **extra) -> None:
        v.append(({"name": name, "error": error, "open_with": ["x25519"], **extra}, data))

    table, ct = _v2_offsets(signed)
    step = 1024 + 16
    # A holder of any key the package is sealed for knows the content key and can encrypt a chunk of its own
    # that passes the AEAD; only the signed digest table stops it. Same seed and length = same key and nonces.
    forged_payload = PAYLOAD[:1024] + b"X" * 1024 + PAYLOAD[2048:]
    forged = seal(forged_payload, _manifest(), [device_slot, raw_slot], PUBLISHER, seed=b"2v1", chunk_size=1024,
                  digest="sha-256")
    assert forged[:table] == signed[:table]  # same header, manifest and slots: the AEAD accepts the chunk
    forged_chunk = forged[ct + step : ct + 2 * step]
    bad("v2-invalid-digest-table-mismatch", _patch(signed, ct + step, forged_chunk), "InvalidPackage")
    bad("v2-invalid-chunk-and-table-forged",
        _patch(_patch(signed, ct + step, forged_chunk), table + 32, forged[table + 32 : table + 64]), "InvalidPackage")
    bad("v2-invalid-chunks-swapped", signed[:ct] + signed[ct + step : ct + 2 * step] + signed[ct : ct + step]
        + signed[ct + 2 * step :], "InvalidPackage")
    bad("v2-invalid-truncated-last-chunk", signed[: ct + 2 * step], "InvalidPackage")
    bad("v2-invalid-truncated-in-payload", signed[: ct + 500], "InvalidPackage")
    bad("v2-invalid-table-edited", _patch(signed, table + 40, bytes([signed[table + 40] ^ 0x01])), "InvalidPackage")
    bad("v2-invalid-payload-bit-flip", _patch(signed, ct + 100, bytes([signed[ct + 100] ^ 0x01])), "InvalidPackage")
    bad("v2-invalid-signature-bit-flip", _patch(signed, ct - 9, bytes([signed[ct - 9] ^ 0x80])), "InvalidPackage")
    bad("v2-invalid-manifest-edited", signed.replace(b'"model_version":2', b'"model_version":9'), "InvalidPackage")
    bad("v2-invalid-version-3", _patch(signed, 8, b"\x00\x03"), "InvalidPackage")
    bad("v2-invalid-trailing-byte", signed + b"\x00", "InvalidPackage")
    bad("v2-invalid-version-patched-to-1", _patch(signed, 8, b"\x00\x01"), "InvalidPackage")

    u_table, u_ct = _v2_offsets(unsigned)
    unsigned_bad = dict(open_with=["raw"], allow_unsigned=True)
    bad("v2-invalid-unsigned-table-edited", _patch(unsigned, u_table + 5, bytes([unsigned[u_table + 5] ^ 0x10])),
        "InvalidPackage", **unsigned_bad)
    bad("v2-invalid-unsigned-chunks-swapped", unsigned[:u_ct] + unsigned[u_ct + step : u_ct + 2 * step]
        + unsigned[u_ct : u_ct + step] + unsigned[u_ct + 2 * step :], "InvalidPackage", **unsigned_bad)
    bad("v2-invalid-unsigned-unknown-chunk-digest", unsigned.replace(b'"chunk_digest":"sha-256"',
                                                                      b'"chunk_digest":"sha-999"'),
        "InvalidPackage", **unsigned_bad)
    return [({**meta, "format_version": 2}, data) for meta, data in v]


def build_v2_blake3() -> list[tuple[dict, bytes]]:
    """Format v2 with BLAKE3 chunk digests (docs/format.md §10.2), the writers' default since they were added."""
    seal = functools.partial(_seal_any_version, version=2, digest="blake3")
    device_slot, raw_slot = DeviceRecipient(_raw_public(DEVICE)), RawKeyRecipient(RAW)
    v = []
    aes = seal(PAYLOAD, _manifest(), [device_slot, raw_slot], PUBLISHER, seed=b"3v1", chunk_size=1024)
    v.append(({"name": "v2-valid-aes-blake3-x25519-raw-signed", "open_with": ["x25519", "raw"]}, aes))
    chacha = seal(PAYLOAD, _manifest(), [raw_slot], PUBLISHER, seed=b"3v2", cipher="chacha20-poly1305",
                  codec=Codec.ZLIB, chunk_size=1024)
    v.append(({"name": "v2-valid-chacha-blake3-raw-zlib-signed", "open_with": ["raw"]}, chacha))
    # 1040-byte chunks: each digest input spans two BLAKE3 chunks (1024 bytes), so a reader's tree
    # hashing (chunk chaining values merged by a parent node) is exercised, not only one chunk.
    table, ct = _v2_offsets(aes)
    step = 1024 + 16
    forged_payload = PAYLOAD[:1024] + b"X" * 1024 + PAYLOAD[2048:]
    forged = seal(forged_payload, _manifest(), [device_slot, raw_slot], PUBLISHER, seed=b"3v1", chunk_size=1024)
    assert forged[:table] == aes[:table]
    v.append(({"name": "v2-invalid-blake3-digest-table-mismatch", "error": "InvalidPackage", "open_with": ["x25519"]},
              _patch(aes, ct + step, forged[ct + step : ct + 2 * step])))
    v.append(({"name": "v2-invalid-blake3-table-edited", "error": "InvalidPackage", "open_with": ["x25519"]},
              _patch(aes, table + 33, bytes([aes[table + 33] ^ 0x04]))))
    return [({**meta, "format_version": 2}, data) for meta, data in v]


def _elem(**fields) -> TensorSpec:
    return TensorSpec(name="", **fields)


TENSOR_SPECS_IN = (
    TensorSpec(name="x", dtype="float32", shape=(None, 4)),
    TensorSpec(name="text", dtype="string", shape=()),
    TensorSpec(name="any_rank", dtype="uint64", shape=None),
    TensorSpec(name="bias", dtype="float32", shape=(2,), optional=True),
    TensorSpec(name="maybe", kind="optional", optional=True, elem=_elem(dtype="float16", shape=(0, 2))),
    TensorSpec(name="items", kind="sequence", elem=_elem(dtype="int64", shape=None)),
    TensorSpec(name="features", kind="map", key="string", elem=_elem(dtype="float32", shape=())),
)
TENSOR_SPECS_OUT = (
    TensorSpec(name="probs", kind="sequence", elem=_elem(kind="map", key="int64", elem=_elem(dtype="float32",
                                                                                           shape=None))),
    TensorSpec(name="q", dtype="int8", shape=(1, 3),
               quant=QuantParams(scale=(0.5, 0.25, 0.125), zero_point=(0, -1, 1), axis=1)),
    TensorSpec(name="h", dtype="bfloat16", shape=(None,)),
)


def keys_json() -> dict:
    return {
        "publisher_public": _raw_public(PUBLISHER).hex(),
        "x25519_private": _raw_private(DEVICE).hex(),
        "raw": RAW.hex(),
        "passphrase": PASSPHRASE,
        "now": NOW,
    }


def describe(vectors: list[tuple[dict, bytes]]) -> dict:
    entries = []
    for meta, data in vectors:
        entry = {
            "file": meta["name"] + ".eseal",
            "sha256": hashlib.sha256(data).hexdigest(),
            "open_with": meta["open_with"],
            "trusted": [] if meta.get("allow_unsigned") else ["publisher_public"],
            "allow_unsigned": meta.get("allow_unsigned", False),
            "min_version": meta.get("min_version"),
            "format_version": meta["format_version"],
        }
        if "error" in meta:
            entry["error"] = meta["error"]
        else:
            entry["plaintext_sha256"] = hashlib.sha256(b"" if "empty" in meta["name"] else PAYLOAD).hexdigest()
        entries.append(entry)
    return {"format_versions": [1, 2], "keys": keys_json(), "vectors": entries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args()
    vectors = build()
    if args.check:
        stale = [m["name"] for m, data in vectors if (HERE / (m["name"] + ".eseal")).read_bytes() != data]
        print("\n".join(stale) or "all vectors reproduce byte for byte")
        return 1 if stale else 0
    for meta, data in vectors:
        (HERE / (meta["name"] + ".eseal")).write_bytes(data)
    (HERE / "vectors.json").write_text(json.dumps(describe(vectors), indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
