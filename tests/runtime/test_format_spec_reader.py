"""A second reader of formats v1 and v2, written from docs/format.md alone with the raw `cryptography`
primitives (and hashlib's BLAKE2b); the reader itself uses no edgeseal code. It must agree with every
frozen vector."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SPEC = json.loads((VECTORS / "vectors.json").read_text())
KEYS = SPEC["keys"]


class Reject(Exception):
    """The spec says: reject. ``reason`` is the spec's name for the failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise Reject("InvalidPackage")
    return v


def _json_rules(text: bytes):
    """§2.1: UTF-8, one object, nesting <= 64, no lone surrogates, no duplicates, int64 integers, finite numbers."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text.decode("utf-8"):  # (a BOM is not JSON whitespace, so json.loads rejects it below)
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > 64:
        raise ValueError("nested too deep")

    def integer(literal):
        if not -(2**63) <= int(literal) < 2**63:
            raise ValueError("integer outside int64")
        return int(literal)

    def number(literal):
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            raise ValueError("overflows a double")
        return value

    def no_duplicates(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate member")
        return dict(pairs)

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    value = json.loads(text.decode("utf-8"), parse_int=integer, parse_float=number, parse_constant=no_constants,
                       object_pairs_hook=no_duplicates)

    def strings(v):
        if isinstance(v, str):
            v.encode("utf-8")  # a lone surrogate cannot be encoded: UnicodeEncodeError (a ValueError)
        elif isinstance(v, dict):
            for k, item in v.items():
                strings(k)
                strings(item)
        elif isinstance(v, list):
            for item in v:
                strings(item)

    strings(value)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _members(m: dict) -> None:
    """§2: every member required, of its type; only target and expires_at may be null."""
    def typed(d, key, types):
        if key not in d or isinstance(d[key], bool) and bool not in types or not isinstance(d[key], types):
            raise Reject("InvalidPackage")
        return d[key]

    for key in ("kind", "content_format", "name", "producer"):
        typed(m, key, (str,))
    if m["kind"] not in ("model", "dataset"):
        raise Reject("InvalidPackage")
    typed(m, "target", (str, type(None)))
    typed(m, "compression", (dict,))
    if not all(isinstance(v, str) for v in typed(m, "metadata", (dict,)).values()):
        raise Reject("InvalidPackage")
    created = _int(typed(m, "created_at", (int,)))
    _int(typed(m, "model_version", (int,)))
    expires = typed(m, "expires_at", (int, type(None)))
    if expires is not None and _int(expires) <= created:
        raise Reject("InvalidPackage")
    for key in ("inputs", "outputs"):
        for spec in typed(m, key, (list,)):
            _tensor_spec(spec, 1)
    pay = typed(m, "payload", (dict,))
    for key in ("cipher", "nonce_prefix", "codec"):
        typed(pay, key, (str,))
    for key in ("chunk_size", "size", "original_size"):
        _int(typed(pay, key, (int,)))


_INTS = {"int4": (-8, 7), "uint4": (0, 15), **{f"{u}int{b}": ((0, 2**b - 1) if u else (-(2**(b - 1)), 2**(b - 1) - 1))
                                                 for u in ("", "u") for b in (8, 16, 32, 64)}}
_DTYPES = set(_INTS) | {"bool", "float16", "float32", "float64", "complex64", "complex128", "string", "bfloat16",
                        "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn"}


def _tensor_spec(spec, level: int) -> None:
    """§2.2: a tensor spec at nesting level ``level`` (1 = an input or output)."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(spec, dict):
        raise Reject("InvalidPackage")
    if level == 1:
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise Reject("InvalidPackage")
    elif "name" in spec or spec.get("optional", False):
        raise Reject("InvalidPackage")
    kind, optional = spec.get("kind", "tensor"), spec.get("optional", False)
    if kind not in ("tensor", "sequence", "map", "optional") or not isinstance(optional, bool):
        raise Reject("InvalidPackage")
    if kind != "tensor":
        if level >= 8 or any(k in spec for k in ("dtype", "shape", "quant")) or "elem" not in spec:
            raise Reject("InvalidPackage")
        if (kind == "map") != ("key" in spec) or kind == "map" and spec["key"] not in set(_INTS) - {"int4", "uint4"} | {
                "string"}:
            raise Reject("InvalidPackage")
        _tensor_spec(spec["elem"], level + 1)
        return
    if "elem" in spec or "key" in spec or spec.get("dtype") not in _DTYPES or "shape" not in spec:
        raise Reject("InvalidPackage")
    shape = spec["shape"]
    if shape is not None and (not isinstance(shape, list) or not all(
            d is None or integer(d) and 0 <= d <= 2**62 for d in shape)):
        raise Reject("InvalidPackage")
    q = spec.get("quant")
    if q is None:
        return
    if not isinstance(q, dict) or spec["dtype"] not in _INTS or not isinstance(q.get("scale"), list) \
            or not isinstance(q.get("zero_point"), list):
        raise Reject("InvalidPackage")
    scale, zero, axis = q["scale"], q["zero_point"], q.get("axis")
    low, high = _INTS[spec["dtype"]]
    if not scale or len(scale) != len(zero) or not all(number(x) and 0 < x < float("inf") for x in scale) \
            or not all(integer(z) and low <= z <= high for z in zero):
        raise Reject("InvalidPackage")
    if axis is None:
        if len(scale) > 1:
            raise Reject("InvalidPackage")
    elif not integer(axis) or axis < 0 or shape is not None and (
            axis >= len(shape) or len(scale) > 1 and shape[axis] is not None and shape[axis] != len(scale)):
        raise Reject("InvalidPackage")


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def _digest(name: str, chunk: bytes) -> bytes:
    """§10.2: BLAKE3 (32-byte output), SHA-256, or BLAKE2b with a 32-byte output (RFC 7693, unkeyed)."""
    if name == "blake3":
        from blake3 import blake3

        return blake3(chunk).digest()
    if name == "sha-256":
        h = hashes.Hash(hashes.SHA256())
        h.update(chunk)
        return h.finalize()
    return hashlib.blake2b(chunk, digest_size=32).digest()


def spec_read(data: bytes, *, trusted: list[bytes], allow_unsigned: bool, min_version, now: int, key) -> bytes:
    """§7 'Reading, in order' (v1), §10.4 (v2)."""
    def take(pos: int, n: int) -> bytes:
        if pos + n > len(data):
            raise Reject("InvalidPackage")
        return data[pos : pos + n]

    # 1. header
    magic, version, flags, mlen = struct.unpack(">8sHHI", take(0, 16))
    if magic != b"\x89ESEAL\r\n" or version not in (1, 2) or flags != 0 or mlen > 4 * 2**20:
        raise Reject("InvalidPackage")
    # 2. manifest
    try:
        manifest = _json_rules(take(16, mlen))
        _members(manifest)
        pay = manifest["payload"]
        cipher, chunk, prefix = pay["cipher"], _int(pay["chunk_size"]), bytes.fromhex(pay["nonce_prefix"])
        codec, size, original = pay["codec"], _int(pay["size"]), _int(pay["original_size"])
        version_, expires = _int(manifest["model_version"]), manifest["expires_at"]
        digest_name = pay["chunk_digest"] if version == 2 else None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Reject("InvalidPackage") from None
    if cipher not in ("aes-256-gcm", "chacha20-poly1305") or codec not in ("none", "zlib") or len(prefix) != 7:
        raise Reject("InvalidPackage")
    if not 1024 <= chunk <= 2**28 or (codec == "none" and size != original):
        raise Reject("InvalidPackage")
    if version == 2 and digest_name not in ("blake3", "sha-256", "blake2b-256"):
        raise Reject("InvalidPackage")
    aad = hashlib.sha256(data[: 16 + mlen]).digest()  # H
    # 3. slots, payload, signature, end of file
    pos = 16 + mlen
    (count,) = struct.unpack(">H", take(pos, 2))
    pos += 2
    if not 1 <= count <= 1024:
        raise Reject("InvalidPackage")
    slots = []
    for _ in range(count):
        stype, blen = struct.unpack(">BH", take(pos, 3))
        body = take(pos + 3, blen)
        if {1: 96, 2: 67, 3: 80}.get(stype, blen) != blen:
            raise Reject("InvalidPackage")
        slots.append((stype, body))
        pos += 3 + blen
    n = max(1, -(-size // chunk))
    table = None
    if version == 2:  # §10.1: digest table, signature, then the payload
        table = take(pos, 32 * n)
        pos += 32 * n
    else:  # v1: payload, then the signature
        (ct_len,) = struct.unpack(">Q", take(pos, 8))
        if ct_len != size + 16 * n:
            raise Reject("InvalidPackage")
        ciphertext = take(pos + 8, ct_len)
        pos += 8 + ct_len
    alg = take(pos, 1)[0]
    if alg == 1:
        publisher, signature, signed = take(pos + 1, 32), take(pos + 33, 64), data[: pos + 33]
        pos += 97
    elif alg == 0:
        publisher = None
        pos += 1
    else:
        raise Reject("InvalidPackage")
    if version == 2:
        (ct_len,) = struct.unpack(">Q", take(pos, 8))
        if ct_len != size + 16 * n:
            raise Reject("InvalidPackage")
        ciphertext = take(pos + 8, ct_len)
        pos += 8 + ct_len
    if pos != len(data):
        raise Reject("InvalidPackage")
    # 4. trust and signature, before any decryption
    if publisher is None:
        if not allow_unsigned:
            raise Reject("UnsignedPackage")
    else:
        if publisher not in trusted and not (allow_unsigned and not trusted):
            raise Reject("UntrustedPublisher")
        try:
            if version == 2:  # §10.3
                message = b"edgeseal/v2/signature" + b"\x00" + hashlib.sha256(signed).digest()
            else:
                blocks = [signed[j : j + 2**20] for j in range(0, max(1, len(signed)), 2**20)]
                digest = hashlib.sha256(b"edgeseal/v1/blocks" + struct.pack(">Q", len(signed))
                                        + b"".join(hashlib.sha256(b).digest() for b in blocks)).digest()
                message = b"edgeseal/v1/signature" + b"\x00" + digest
            Ed25519PublicKey.from_public_bytes(publisher).verify(signature, message)
        except InvalidSignature:
            raise Reject("InvalidPackage") from None
    # 5. policy
    if min_version is not None and version_ < min_version:
        raise Reject("RollbackRejected")
    if expires is not None and now >= _int(expires):
        raise Reject("PackageExpired")
    # 6. slot
    def unwrap(wrap_key: bytes, wrapped: bytes) -> bytes:
        try:
            return AESGCM(wrap_key).decrypt(bytes(12), wrapped, aad)
        except InvalidTag:
            raise Reject("InvalidPackage") from None

    if isinstance(key, X25519PrivateKey):
        d_pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        fp = hashlib.sha256(b"edgeseal/v1/fingerprint/x25519" + d_pub).digest()[:16]
        match = [b for t, b in slots if t == 1 and b[:16] == fp]
        if not match:
            raise Reject("NoMatchingKey")
        e_pub = match[0][16:48]
        shared = key.exchange(X25519PublicKey.from_public_bytes(e_pub))
        content_key = unwrap(_hkdf(shared, e_pub + d_pub, b"edgeseal/v1/slot/x25519"), match[0][48:])
    elif isinstance(key, bytes):
        fp = hashlib.sha256(b"edgeseal/v1/fingerprint/raw" + key).digest()[:16]
        match = [b for t, b in slots if t == 3 and b[:16] == fp]
        if not match:
            raise Reject("NoMatchingKey")
        content_key = unwrap(_hkdf(key, match[0][16:32], b"edgeseal/v1/slot/raw"), match[0][32:])
    else:
        match = [b for t, b in slots if t == 2]
        if not match:
            raise Reject("NoMatchingKey")
        salt, (log2_n, r, p) = match[0][:16], match[0][16:19]
        kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
        content_key = unwrap(kdf.derive(key.encode("utf-8")), match[0][19:])
    # 7. chunks
    aead = AESGCM(content_key) if cipher == "aes-256-gcm" else ChaCha20Poly1305(content_key)
    plain = bytearray()
    for i in range(n):
        start = i * (chunk + 16)
        part = ciphertext[start : start + min(chunk, size - i * chunk) + 16]
        if table is not None and _digest(digest_name, part) != table[32 * i : 32 * (i + 1)]:  # §10.4 step 7
            raise Reject("InvalidPackage")
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if i == n - 1 else b"\x00")
        try:
            plain += aead.decrypt(nonce, part, aad)
        except InvalidTag:
            raise Reject("InvalidPackage") from None
    # 8. codec
    if codec == "zlib":
        inflater = zlib.decompressobj()
        out = inflater.decompress(bytes(plain), max(1, original))
        if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data or len(out) != original:
            raise Reject("InvalidPackage")
        return out
    return bytes(plain)


def _key(kind: str):
    if kind == "x25519":
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS["x25519_private"]))
    return bytes.fromhex(KEYS["raw"]) if kind == "raw" else KEYS["passphrase"]


@pytest.mark.parametrize("vector", SPEC["vectors"], ids=lambda v: v["file"])
def test_spec_reader_agrees_with_vector(vector):
    data = (VECTORS / vector["file"]).read_bytes()
    for kind in vector["open_with"]:
        kwargs = dict(trusted=[bytes.fromhex(KEYS[t]) for t in vector["trusted"]],
                      allow_unsigned=vector["allow_unsigned"], min_version=vector["min_version"],
                      now=KEYS["now"], key=_key(kind))
        if "error" in vector:
            with pytest.raises(Reject) as err:
                spec_read(data, **kwargs)
            assert err.value.reason == vector["error"]
        else:
            assert hashlib.sha256(spec_read(data, **kwargs)).hexdigest() == vector["plaintext_sha256"]


@pytest.mark.parametrize("version,cipher", [(1, "aes-256-gcm"), (2, "aes-256-gcm"), (2, "chacha20-poly1305")])
def test_spec_reader_opens_a_large_parallel_package(version, cipher):
    """A 9 MiB payload takes edgeseal's multi-block, multi-thread hashing and decryption paths."""
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    import edgeseal
    from edgeseal.runtime.format import DeviceRecipient, Manifest, write_package

    payload = os.urandom(9 * 2**20 + 123)
    publisher, device = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    device_public = device.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    package = write_package(payload, Manifest(content_format="bin"), [DeviceRecipient(device_public)], publisher,
                            cipher=cipher, version=version)
    assert package[8:10] == bytes([0, version])
    public = publisher.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    got = spec_read(package, trusted=[public], allow_unsigned=False, min_version=None, now=0, key=device)
    assert got == payload
    _, plain = edgeseal.open_payload(package, key=device, trusted=[publisher])
    assert bytes(plain.view) == payload


def test_spec_reader_judges_every_tensor_spec_case_as_edgeseal():
    """§2.2 as written accepts and rejects the same specs as edgeseal's strict TensorSpec.from_dict."""
    import importlib.util

    from edgeseal.runtime.tensors import TensorSpec

    path = Path(__file__).resolve().parent / "test_tensors.py"
    module_spec = importlib.util.spec_from_file_location("tensor_cases", path)
    cases = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(cases)
    def read(spec):  # as inside a manifest: the §2.1 JSON rules first, then §2.2
        _tensor_spec(_json_rules(json.dumps(spec).encode()), 1)

    for spec in cases.VALID:
        read(spec)
        TensorSpec.from_dict(spec)
    for spec, error, _ in cases.MALFORMED:
        with pytest.raises((Reject, TypeError, ValueError, KeyError)):
            read(spec)
        with pytest.raises(error):
            TensorSpec.from_dict(spec)
