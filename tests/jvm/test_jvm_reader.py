"""The Java reader (runtime/jvm) against the frozen vectors, fresh packages and every bit flip.

The library and tests/jvm/java/io/edgeseal/VectorDriver.java are compiled with ``javac`` into a temp
dir and run with ``java``; every answer is compared with vectors.json and with the Python runtime
(``edgeseal.runtime.format.Package``). Skipped only when no JDK is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgeseal.runtime import crypto
from edgeseal.runtime import format as fmt
from edgeseal.runtime import payload as payload_v2
from edgeseal.runtime.errors import EdgesealError
from edgeseal.runtime.format import (
    DeviceRecipient,
    Manifest,
    Package,
    PassphraseRecipient,
    RawKeyRecipient,
    write_package,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
SPEC = json.loads((VECTORS / "vectors.json").read_text())
KEYS = SPEC["keys"]
NOW = KEYS["now"]

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None,
    reason="no JDK: install a JDK 17+ (javac and java on PATH) to test the Java reader",
)


@pytest.fixture(scope="module")
def java(tmp_path_factory):
    """Compile the library and the driver once; returns run(*args) -> stdout lines."""
    out = tmp_path_factory.mktemp("jvm-classes")
    sources = sorted(str(p) for p in (ROOT / "runtime" / "jvm" / "src").rglob("*.java"))
    sources += sorted(str(p) for p in (ROOT / "tests" / "jvm" / "java").rglob("*.java"))
    proc = subprocess.run(["javac", "--release", "17", "-Xlint:all", "-d", str(out), *sources],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    def run(*args: str) -> list[str]:
        proc = subprocess.run(["java", "-cp", str(out), "io.edgeseal.VectorDriver", *args],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    return run


def test_library_uses_only_the_java_8_language_and_api(tmp_path):
    """Android's D8 and older API levels: the library alone must build against the Java 8 class library."""
    sources = sorted(str(p) for p in (ROOT / "runtime" / "jvm" / "src").rglob("*.java"))
    proc = subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-d", str(tmp_path), *sources],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "not supported" in proc.stderr:
        pytest.skip(f"this JDK cannot target Java 8: {proc.stderr.strip().splitlines()[0]}")
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run(["javap", "-c", "-p", "-cp", str(tmp_path), "io.edgeseal.SealedPackage",
                              "io.edgeseal.Plaintext"], capture_output=True, text=True, check=True).stdout
    assert "Method java/nio/ByteBuffer.position" not in listing and "Method java/nio/ByteBuffer.clear" not in listing
    assert "Method java/nio/Buffer.position" in listing  # the portable call is there


def _python_key(kind: str, keys: dict):
    if kind == "x25519":
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["x25519_private"]))
    return bytes.fromhex(keys["raw"]) if kind == "raw" else keys["passphrase"]


def python_open(data: bytes, key, *, trusted=(), allow_unsigned=False, min_version=None, now=NOW):
    """The Python runtime's answer: ("ok", sha256, publisher) or ("error", class name, None)."""
    try:
        package = Package.parse(data)
        publisher = package.authenticate(list(trusted), allow_unsigned=allow_unsigned)
        package.check_policy(min_version=min_version, now=now)
        plain = package.decrypt(package.content_key(key))
        digest = hashlib.sha256(bytes(plain.view)).hexdigest()
        plain.wipe()
        return "ok", digest, publisher
    except EdgesealError as exc:
        return "error", type(exc).__name__, None


def run_cases(java, tmp_path: Path, keys: dict, vectors: list[dict], directory: Path) -> list[dict]:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"keys": keys, "vectors": vectors}))
    return [json.loads(line) for line in java("vectors", str(cases), str(directory))]


def test_every_frozen_vector_agrees_with_vectors_json_and_the_python_runtime(java):
    lines = [json.loads(line) for line in java("vectors", str(VECTORS / "vectors.json"), str(VECTORS))]
    expected = [(v, k) for v in SPEC["vectors"] for k in v["open_with"]]
    assert len(lines) == len(expected) == 35 + 21 + 5  # v1, v2 (tests/vectors/v2-*), v2 with BLAKE3
    valid = invalid = 0
    for line, (vector, kind) in zip(lines, expected):
        assert (line["file"], line["key"]) == (vector["file"], kind)
        data = (VECTORS / vector["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == vector["sha256"]  # the frozen file itself
        status, value, publisher = python_open(
            data, _python_key(kind, KEYS), trusted=[bytes.fromhex(KEYS[t]) for t in vector["trusted"]],
            allow_unsigned=vector["allow_unsigned"], min_version=vector["min_version"])
        if "error" in vector:
            invalid += 1
            assert line["result"] == "error", line
            assert line["error"] == vector["error"] == value, (line, vector)
        else:
            valid += 1
            assert line["result"] == "ok", line
            assert line["sha256"] == vector["plaintext_sha256"] == value
            assert line["direct"] is True
            assert line["publisher"] == publisher  # same fingerprint text, or both null (unsigned)
    assert (valid, invalid) == (7 + 6 + 3, 28 + 15 + 2)
    # the opaque error really is opaque: one message for every structural/crypto failure
    opaque = {line["message"] for line in lines if line.get("error") == "InvalidPackage"}
    assert len(opaque) == 1


def _seal(payload: bytes, recipients, *, signer=None, cipher="aes-256-gcm", codec="none", chunk=1024,
          version=1, expires=None, name="fresh", format_version=2, digest=None) -> bytes:
    manifest = Manifest(content_format="bin", name=name, model_version=version, created_at=NOW - 100,
                        expires_at=expires, producer="tests/jvm")
    return write_package(payload, manifest, recipients, signer, cipher=fmt.Cipher(cipher), codec=fmt.Codec(codec),
                         chunk_size=chunk, version=format_version, digest=digest)


def _raw_public(key) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture(scope="module")
def parties():
    publisher = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"jvm publisher").digest())
    other = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"jvm other publisher").digest())
    device = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"jvm device").digest())
    stranger = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"jvm stranger").digest())
    raw = hashlib.sha256(b"jvm raw key").digest()
    keys = {
        "publisher_public": _raw_public(publisher).hex(),
        "other_public": _raw_public(other).hex(),
        "x25519_private": device.private_bytes_raw().hex(),
        "raw": raw.hex(),
        "passphrase": "grüne Bohnen, 7 Stück",  # non-ASCII: UTF-8 on both sides
        "now": NOW,
    }
    return SimpleNamespace(publisher=publisher, other=other, device=device, stranger=stranger, raw=raw, keys=keys)


def test_fresh_packages_from_the_python_writer_open_identically(java, parties, tmp_path):
    """Chunk boundaries, both ciphers, zlib, every slot type, several slots, a >1 MiB signed body."""
    rng = __import__("random").Random(7)
    text = b"".join(b"layer %d weights %d\n" % (i, rng.randrange(10**6)) for i in range(400))  # compressible
    device_slot = DeviceRecipient(_raw_public(parties.device))
    slots_for_all = [DeviceRecipient(_raw_public(parties.stranger)), device_slot, RawKeyRecipient(parties.raw),
                     PassphraseRecipient(parties.keys["passphrase"], log2_n=10)]
    cases = [
        ("exact-4-chunks", os.urandom(4096), dict(chunk=1024)),
        ("5-chunks-chacha", os.urandom(4097), dict(chunk=1024, cipher="chacha20-poly1305")),
        ("zlib-aes", text, dict(codec="zlib")),
        ("zlib-chacha-small-chunks", text, dict(codec="zlib", cipher="chacha20-poly1305", chunk=1024)),
        ("one-byte", b"\x00", dict()),
        ("2.5MiB-signed", os.urandom(5 * 2**19 + 17), dict(chunk=2**20)),  # 3 signature blocks, 3 chunks
        ("future-expiry", b"model", dict(expires=NOW + 3600)),
        ("v1-exact-4-chunks", os.urandom(4096), dict(chunk=1024, format_version=1)),
        ("v1-zlib-chacha", text, dict(codec="zlib", cipher="chacha20-poly1305", format_version=1)),
        ("v1-2.5MiB-signed", os.urandom(5 * 2**19 + 17), dict(chunk=2**20, format_version=1)),
        ("blake2b-block-edges", os.urandom(3 * 1024 + 1), dict(chunk=1024, digest="blake2b-256")),  # 1040-byte chunks
        ("sha256-with-chacha", os.urandom(2000), dict(cipher="chacha20-poly1305", digest="sha-256")),
        ("blake3-default-chacha", os.urandom(5000), dict(cipher="chacha20-poly1305")),
        # 2**20 + 16-byte digest inputs: 1025 BLAKE3 chunks, an 11-level tree with an odd chunk at the end
        ("blake3-1MiB-chunks", os.urandom(2**21 + 3), dict(chunk=2**20, digest="blake3")),
    ]
    vectors = []
    for name, payload, options in cases:
        path = tmp_path / f"{name}.eseal"
        path.write_bytes(_seal(payload, slots_for_all, signer=parties.publisher, name=name, **options))
        vectors.append({"file": path.name, "open_with": ["x25519", "raw", "passphrase"],
                        "trusted": ["publisher_public"], "allow_unsigned": False, "min_version": 1,
                        "sha": hashlib.sha256(payload).hexdigest(), "size": len(payload)})
    lines = run_cases(java, tmp_path, parties.keys, vectors, tmp_path)
    assert len(lines) == 3 * len(cases)
    for line in lines:
        vector = next(v for v in vectors if v["file"] == line["file"])
        data = (tmp_path / line["file"]).read_bytes()
        status, digest, publisher = python_open(
            data, _python_key(line["key"], parties.keys), trusted=[_raw_public(parties.publisher)], min_version=1)
        assert line["result"] == status == "ok", line
        assert line["sha256"] == digest == vector["sha"]
        assert line["size"] == vector["size"]
        assert line["publisher"] == publisher


def test_trust_and_policy_are_decided_before_any_decryption(java, parties, tmp_path):
    """Every package here also has a corrupt payload and wrapped key: had the reader decrypted first it
    would answer InvalidPackage; it must answer with the trust or policy decision instead."""
    device = [DeviceRecipient(_raw_public(parties.device))]

    def corrupt(package: bytes) -> bytes:
        p = Package.parse(package)
        data = bytearray(package)
        start = len(package) - len(p.ciphertext)  # v2: the payload ends the file
        data[start + 5] ^= 0xFF  # payload ciphertext
        data[16 + p.header.manifest_len + 2 + 3 + 60] ^= 0xFF  # the first slot's wrapped key
        return bytes(data)

    def resign(package: bytes, signer) -> bytes:
        """Re-sign a modified package (v2: the signed part ends with the digest table, so the signature is valid
        and only the ciphertext is not)."""
        p = Package.parse(package)
        body = package[: p.signature.signed_len]
        return body + signer.sign(payload_v2.signature_message(body)) + package[p.signature.signed_len + 64 :]

    cases = {
        "untrusted": (resign(corrupt(_seal(b"m" * 3000, device, signer=parties.other)), parties.other),
                      dict(trusted=["publisher_public"]), "UntrustedPublisher"),
        "unsigned-refused": (corrupt(_seal(b"m" * 3000, device)), dict(trusted=["publisher_public"]),
                             "UnsignedPackage"),
        "below-floor": (resign(corrupt(_seal(b"m" * 3000, device, signer=parties.publisher, version=1)),
                               parties.publisher), dict(trusted=["publisher_public"], min_version=5),
                        "RollbackRejected"),
        "expired": (resign(corrupt(_seal(b"m" * 3000, device, signer=parties.publisher, expires=NOW - 1)),
                           parties.publisher), dict(trusted=["publisher_public"]), "PackageExpired"),
        # controls: the same corruption is caught once trust and policy pass
        "control-corrupt": (resign(corrupt(_seal(b"m" * 3000, device, signer=parties.publisher)), parties.publisher),
                            dict(trusted=["publisher_public"]), "InvalidPackage"),
        "bad-signature-no-anchors": (corrupt(_seal(b"m" * 3000, device, signer=parties.other)),
                                     dict(trusted=[], allow_unsigned=True), "InvalidPackage"),
        "no-anchors-valid": (_seal(b"m" * 3000, device, signer=parties.other), dict(trusted=[], allow_unsigned=True),
                             None),
    }
    vectors = []
    for name, (package, opts, _) in cases.items():
        (tmp_path / f"{name}.eseal").write_bytes(package)
        vectors.append({"file": f"{name}.eseal", "open_with": ["x25519"], "trusted": opts["trusted"],
                        "allow_unsigned": opts.get("allow_unsigned", False),
                        "min_version": opts.get("min_version")})
    lines = run_cases(java, tmp_path, parties.keys, vectors, tmp_path)
    for line, (name, (package, opts, error)) in zip(lines, cases.items()):
        py = python_open(package, parties.device, trusted=[bytes.fromhex(parties.keys[t]) for t in opts["trusted"]],
                         allow_unsigned=opts.get("allow_unsigned", False), min_version=opts.get("min_version"))
        if error is None:
            assert line["result"] == py[0] == "ok" and line["publisher"] is None and py[2] is None, (name, line)
        else:
            assert line.get("error") == error == py[1], (name, line, py)


@pytest.mark.parametrize("format_version", [1, 2], ids=["v1", "v2"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_every_single_bit_flip_gets_the_python_runtimes_answer(java, parties, tmp_path, signed, format_version):
    """Flip the low bit of each byte of a 2-chunk package in turn: both readers give the same answer."""
    package = _seal(os.urandom(1500), [RawKeyRecipient(parties.raw)],
                    signer=parties.publisher if signed else None, chunk=1024, format_version=format_version)
    path = tmp_path / "small.eseal"
    path.write_bytes(package)
    trusted = parties.keys["publisher_public"] if signed else "-"
    java_answers = java("flips", str(path), "raw", parties.raw.hex(), trusted, str(not signed).lower(), str(NOW))
    assert len(java_answers) == len(package)
    python_answers = []
    for i in range(len(package)):
        flipped = bytearray(package)
        flipped[i] ^= 1
        status, value, _ = python_open(bytes(flipped), parties.raw,
                                       trusted=[_raw_public(parties.publisher)] if signed else [],
                                       allow_unsigned=not signed)
        python_answers.append(f"ok:{value}" if status == "ok" else value)
    mismatches = [(i, j, p) for i, (j, p) in enumerate(zip(java_answers, python_answers)) if j != p]
    assert not mismatches, mismatches[:10]
    # no flip of an authenticated byte opens; unsigned packages have none unauthenticated either
    assert all(a != "ok" and not a.startswith("ok:") for a in java_answers)
    counts = {a: java_answers.count(a) for a in set(java_answers)}
    if signed:  # flipping the embedded publisher key makes it untrusted; everything else is opaque
        assert counts == {"UntrustedPublisher": 32, "InvalidPackage": len(package) - 32}
    else:  # flipping the slot's fingerprint addresses it to no key: a public fact, reported as such
        assert counts == {"NoMatchingKey": 16, "InvalidPackage": len(package) - 16}


def test_kdfs_and_fingerprints_match_pythons_primitives(java, parties, tmp_path):
    import hashlib as h

    requests = [
        # RFC 7914 §12 vectors 1 and 2, then the format's parameter shape
        {"op": "scrypt", "password": "", "salt": "", "log2n": 4, "r": 1, "p": 1, "length": 64},
        {"op": "scrypt", "password": b"password".hex(), "salt": b"NaCl".hex(), "log2n": 10, "r": 8, "p": 16,
         "length": 64},
        {"op": "scrypt", "password": "grüne".encode().hex(), "salt": os.urandom(16).hex(), "log2n": 11, "r": 8,
         "p": 2, "length": 32},
        # RFC 5869 test case 1, then random
        {"op": "hkdf", "ikm": "0b" * 22, "salt": "000102030405060708090a0b0c", "info": "f0f1f2f3f4f5f6f7f8f9",
         "length": 42},
        {"op": "hkdf", "ikm": os.urandom(32).hex(), "salt": os.urandom(64).hex(), "info": b"edgeseal/v1/slot/x25519".hex(),
         "length": 32},
        {"op": "x25519_public", "private": parties.keys["x25519_private"]},
        {"op": "fingerprint", "public": parties.keys["publisher_public"]},
        # BLAKE2b block edges (128 bytes), output lengths, RFC 7693 appendix A ("abc", 64 bytes)
        *({"op": "blake2b", "data": os.urandom(n).hex(), "length": 32} for n in (0, 1, 127, 128, 129, 256, 1040, 5000)),
        {"op": "blake2b", "data": b"abc".hex(), "length": 64},
        {"op": "blake2b", "data": os.urandom(300).hex(), "length": 20},
        # BLAKE3 chunk (1024) and block (64) edges, and tree shapes with 2, 3, 4, 5 and 8 chunks
        *({"op": "blake3", "data": os.urandom(n).hex()}
          for n in (1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4096, 4097, 5 * 1024 - 7, 8192, 1040)),
        {"op": "blake3", "data": ""},
    ]
    path = tmp_path / "kdf.json"
    path.write_text(json.dumps(requests))
    answers = [json.loads(line)["out"] for line in java("kdf", str(path))]
    expected = []
    for r in requests:
        if r["op"] == "scrypt":
            expected.append(h.scrypt(bytes.fromhex(r["password"]), salt=bytes.fromhex(r["salt"]), n=2 ** r["log2n"],
                                     r=r["r"], p=r["p"], dklen=r["length"], maxmem=2**28).hex())
        elif r["op"] == "hkdf":
            expected.append(HKDF(hashes.SHA256(), r["length"], bytes.fromhex(r["salt"]), bytes.fromhex(r["info"]))
                            .derive(bytes.fromhex(r["ikm"])).hex())
        elif r["op"] == "blake2b":
            expected.append(h.blake2b(bytes.fromhex(r["data"]), digest_size=r["length"]).hexdigest())
        elif r["op"] == "blake3":
            from blake3 import blake3

            expected.append(blake3(bytes.fromhex(r["data"])).hexdigest())
        elif r["op"] == "x25519_public":
            expected.append(_raw_public(parties.device).hex())
        else:
            expected.append(crypto.publisher_fingerprint(bytes.fromhex(r["public"])))
    assert answers == expected
    assert answers[0].startswith("77d6576238657b203b19ca42c18a0497")  # RFC 7914, first vector
    assert answers[3].startswith("3cb25f25faacd57a90434f64d0362f2a")  # RFC 5869, test case 1
    blake2b_abc = next(i for i, r in enumerate(requests) if r["op"] == "blake2b" and r["length"] == 64)
    assert answers[blake2b_abc].startswith("ba80a53f981c4d0d6a2797b69f12f6e9")  # RFC 7693 appendix A
    # BLAKE3 of the empty input (the BLAKE3 reference's test_vectors.json), independent of both implementations
    assert answers[-1] == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_json_parser_is_small_and_strict(java):
    accept = ['{"a":[1,-2,0,3.5e-1,true,false,null,"\\u00e9\\ud83d\\ude00\\n"]}', " [ ] ", '"x"', "9223372036854775807"]
    reject = ['{"a":1,"a":2}', '{"a":1,}', "[1,]", "01", "1.", ".5", "+1", "NaN", '{"a":1} x', "'a'", '"\\x41"',
              '"\\ud800"', '"tab\there"', "[" * 80 + "]" * 80, "", "{a:1}", "\ufeff{}", "tru"]
    answers = java("json", *accept, *reject)
    assert answers == ["ok"] * len(accept) + ["error"] * len(reject)


def test_json_bounds_agree_with_the_python_reader(java):
    """docs/format.md §2.1: nesting, integer range and double range; both readers draw the same lines.

    Each text is wrapped as the value of a member of a top-level object (Python's reader takes objects only),
    which adds one nesting level: 63 arrays inside it are level 64, the last allowed."""
    from edgeseal.runtime import strictjson

    values = ["[" * 63 + "]" * 63, "[" * 64 + "]" * 64, "{}", "[" * 62 + "{}" + "]" * 62, "[" * 63 + "{}" + "]" * 63,
              "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
              "18446744073709551616", "1" + "0" * 30, "1e308", "1e309", "-1e400", "1e-400", "0.5", "NaN", "Infinity",
              '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"']
    texts = ['{"v":' + v + "}" for v in values]
    java_answers = java("json", *texts)
    python_answers = []
    for text in texts:
        try:
            strictjson.loads(text.encode())
            python_answers.append("ok")
        except strictjson.JSONError:
            python_answers.append("error")
    assert java_answers == python_answers
    assert python_answers == ["ok", "error", "ok", "ok", "error", "ok", "error", "ok", "error", "error", "error",
                              "ok", "error", "error", "ok", "ok", "error", "error", "error", "error", "ok"]


@pytest.mark.parametrize("damage", ["trailing-bytes", "longer-than-claimed", "shorter-than-claimed"])
def test_zlib_payload_must_inflate_to_exactly_original_size(java, parties, tmp_path, monkeypatch, damage):
    """§3 Codec: inflate must consume the whole stream, end exactly at its end and give original_size bytes."""
    payload = b"weights " * 500
    real = zlib.compress
    forged = {
        "trailing-bytes": lambda data, level: real(data, level) + b"\x00\x00",
        "longer-than-claimed": lambda data, level: real(data + b"!", level),
        "shorter-than-claimed": lambda data, level: real(data[:-1], level),
    }[damage]
    monkeypatch.setattr(fmt, "zlib", SimpleNamespace(compress=forged, decompressobj=zlib.decompressobj,
                                                     error=zlib.error))
    package = _seal(payload, [RawKeyRecipient(parties.raw)], signer=parties.publisher, codec="zlib")
    monkeypatch.undo()
    (tmp_path / "forged.eseal").write_bytes(package)
    vectors = [{"file": "forged.eseal", "open_with": ["raw"], "trusted": ["publisher_public"],
                "allow_unsigned": False, "min_version": None}]
    (line,) = run_cases(java, tmp_path, parties.keys, vectors, tmp_path)
    assert line["result"] == "error" and line["error"] == "InvalidPackage", line


def test_reads_the_pem_key_files_edgeseal_writes(java, parties, tmp_path):
    from edgeseal.runtime import keys

    (tmp_path / "device.pem").write_bytes(keys.private_pem(parties.device))
    (tmp_path / "publisher.pub").write_bytes(keys.public_pem(parties.publisher.public_key()))
    private_hex, public_hex = java("pem", str(tmp_path / "device.pem"), str(tmp_path / "publisher.pub"))
    assert private_hex == parties.keys["x25519_private"]
    assert public_hex == parties.keys["publisher_public"]


class _CraftedPassphraseSlot:
    """A passphrase slot with chosen scrypt parameters whose wrapped key never unwraps."""

    def __init__(self, log2_n: int, r: int, p: int) -> None:
        self.params = bytes([log2_n, r, p])

    def make_slot(self, content_key, aad, randbytes):
        return fmt.KeySlot(fmt.SlotType.PASSPHRASE, randbytes(16) + self.params + randbytes(48))


def test_scrypt_work_and_plaintext_size_are_bounded_like_the_python_runtime(java, parties, tmp_path):
    """format.md §9: 1 024 slots at the maximum scrypt cost are refused before scrypt runs; the budget sums over
    slots; a plaintext over the cap is refused before any slot is unwrapped. Java says UnsupportedError, Python
    its subclass LimitExceeded."""
    real = PassphraseRecipient(parties.keys["passphrase"], log2_n=10)
    cases = {
        "max-cost": ([_CraftedPassphraseSlot(22, 2, 16)] * 1024, {}, "UnsupportedError"),
        "over-budget": ([_CraftedPassphraseSlot(10, 8, 1)] * 4 + [real], {"scrypt_budget": 4 * 8192},
                        "UnsupportedError"),
        "within-budget": ([_CraftedPassphraseSlot(10, 8, 1)] * 4 + [real], {"scrypt_budget": 5 * 8192}, None),
        "out-of-bounds-skipped": ([_CraftedPassphraseSlot(22, 32, 1)] * 1023 + [real], {"scrypt_budget": 8192}, None),
        "too-large": ([real], {"max_plaintext": 2999}, "UnsupportedError"),
    }
    vectors = []
    for name, (recipients, limits, _) in cases.items():
        (tmp_path / f"{name}.eseal").write_bytes(_seal(b"m" * 3000, recipients, signer=parties.publisher))
        vectors.append({"file": f"{name}.eseal", "open_with": ["passphrase"], "trusted": ["publisher_public"],
                        "allow_unsigned": False, "min_version": None, **limits})
    started = time.perf_counter()
    lines = run_cases(java, tmp_path, parties.keys, vectors, tmp_path)
    assert time.perf_counter() - started < 60
    for line, (name, (recipients, limits, error)) in zip(lines, cases.items()):
        assert line["ms"] < 5000, (name, line)
        package = Package.parse((tmp_path / f"{name}.eseal").read_bytes())
        try:
            package.check_size(limits.get("max_plaintext", fmt.DEFAULT_MAX_PLAINTEXT))
            key = package.content_key(parties.keys["passphrase"],
                                      scrypt_budget=limits.get("scrypt_budget", fmt.DEFAULT_SCRYPT_BUDGET))
            package.decrypt(key).wipe()
            python = "ok"
        except EdgesealError as exc:
            python = type(exc).__name__
        if error is None:
            assert line["result"] == "ok" and python == "ok", (name, line, python)
        else:
            assert line["error"] == error and python == "LimitExceeded", (name, line, python)
