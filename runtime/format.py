"""Sealed package format v2 (written) and v1 (still read and, on request, written). Spec: docs/format.md.

v1 layout (all integers big-endian)::

    header     magic "\\x89ESEAL\\r\\n" | version u16 = 1 | flags u16 = 0 | manifest_len u32
    manifest   manifest_len bytes of UTF-8 JSON (cleartext)
    slots      count u16, then per slot: type u8 | body_len u16 | body
    payload    ciphertext_len u64 | chunked AEAD ciphertext
    signature  alg u8 (0 none, 1 Ed25519) | Ed25519: public key (32) | signature (64)

The associated data of every AEAD in the file is SHA-256(header || manifest), so
neither can be edited without every tag failing. The signature covers every byte
before the 64 signature bytes.

v2 (docs/format.md §10) moves the signature before the payload and signs a table of
per-chunk digests instead of the ciphertext, so a reader hashes and decrypts each
chunk in one pass (``payload.py``)::

    header | manifest (payload.chunk_digest) | slots | digest table (32 per chunk)
    | signature (alg, key, sig) | ct_len u64 | ciphertext
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum
from typing import Any, Callable, Iterable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from . import crypto, strictjson
from . import payload as v2
from ._memory import PlainBuffer, wipe_bytes
from .crypto import Cipher
from .errors import (
    ConfigError,
    InvalidPackage,
    LimitExceeded,
    NoMatchingKey,
    PackageExpired,
    RollbackRejected,
    UnsignedPackage,
    UntrustedPublisher,
)
from .tensors import TensorSpec

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "Header",
    "Kind",
    "Codec",
    "Cipher",
    "PayloadInfo",
    "Manifest",
    "SlotType",
    "KeySlot",
    "DeviceRecipient",
    "PassphraseRecipient",
    "RawKeyRecipient",
    "Package",
    "write_package",
]

MAGIC = b"\x89ESEAL\r\n"
FORMAT_VERSION = 2  # what writers write
READ_VERSIONS = (1, 2)
HEADER_SIZE = 16
MAX_MANIFEST = 4 * 2**20
MAX_SLOTS = 1024
MIN_CHUNK, MAX_CHUNK = 2**10, 2**28
DEFAULT_CHUNK = 2**20
SIGNATURE_SIZE = 64
# scrypt costs a reader accepts: bounds the memory and time a hostile file can demand.
MAX_SCRYPT_LOG2_N, MAX_SCRYPT_R, MAX_SCRYPT_P, MAX_SCRYPT_MEMORY = 22, 32, 16, 2**30
# Reader limits (local policy, raisable per call; docs/format.md §9): plaintext bytes held in memory, and
# scrypt work (N * r * p, summed over the passphrase slots tried) spent by one load.
DEFAULT_MAX_PLAINTEXT = 2**31
DEFAULT_SCRYPT_BUDGET = 2**24


class Kind(str, Enum):
    MODEL = "model"
    DATASET = "dataset"


class Codec(str, Enum):
    """How the plaintext is compressed before encryption."""

    NONE = "none"
    ZLIB = "zlib"


class SlotType(IntEnum):
    X25519 = 1
    PASSPHRASE = 2
    RAW = 3


class SignatureAlg(IntEnum):
    NONE = 0
    ED25519 = 1


# --- header --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Header:
    """The fixed 16 cleartext bytes at the start of every package."""

    version: int = FORMAT_VERSION
    flags: int = 0
    manifest_len: int

    _STRUCT = struct.Struct(">8sHHI")

    def to_bytes(self) -> bytes:
        return self._STRUCT.pack(MAGIC, self.version, self.flags, self.manifest_len)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> "Header":
        if len(data) < HEADER_SIZE:
            raise InvalidPackage()
        magic, version, flags, manifest_len = cls._STRUCT.unpack_from(data, 0)
        if magic != MAGIC or version not in READ_VERSIONS or flags != 0 or manifest_len > MAX_MANIFEST:
            raise InvalidPackage()
        return cls(version=version, flags=flags, manifest_len=manifest_len)


# --- manifest ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PayloadInfo:
    """How the payload was encoded; filled in by the writer, bound into every tag."""

    cipher: Cipher
    chunk_size: int
    nonce_prefix: bytes
    codec: Codec
    size: int  # bytes encrypted (after the codec)
    original_size: int  # bytes after decoding
    digest: v2.Digest | None = None  # v2: digest of each ciphertext chunk; None in v1

    def to_dict(self) -> dict[str, Any]:
        out = {
            "cipher": self.cipher.value,
            "chunk_size": self.chunk_size,
            "nonce_prefix": self.nonce_prefix.hex(),
            "codec": self.codec.value,
            "size": self.size,
            "original_size": self.original_size,
        }
        if self.digest is not None:
            out["chunk_digest"] = self.digest.value
        return out

    @classmethod
    def from_dict(cls, d: Any) -> "PayloadInfo":
        """Strict: every member present and of its type (docs/format.md §2); ValueError names the member."""
        d = _members(d, "payload")
        info = cls(
            cipher=_choice(Cipher, d, "cipher", "payload"),
            chunk_size=_int(d, "chunk_size", "payload"),
            nonce_prefix=_hex(_str(d, "nonce_prefix", "payload")),
            codec=_choice(Codec, d, "codec", "payload"),
            size=_int(d, "size", "payload"),
            original_size=_int(d, "original_size", "payload"),
            # Read leniently, anything else as None: a v1 reader ignores the member (§2), and
            # Package.parse rejects a v2 package without a known one (§10.2).
            digest=_known_digest(d.get("chunk_digest")),
        )
        if not MIN_CHUNK <= info.chunk_size <= MAX_CHUNK:
            raise ManifestError(f"must be within {MIN_CHUNK}..{MAX_CHUNK}", "payload.chunk_size")
        if info.codec is Codec.NONE and info.size != info.original_size:
            raise ManifestError("must equal payload.size when the codec is 'none'", "payload.original_size")
        if crypto.chunk_count(info.size, info.chunk_size) >= 2**32:
            raise ManifestError("needs 2**32 chunks or more; raise chunk_size", "payload.size")
        return info


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The cleartext description of a package: readable with no key, bound into every AEAD tag."""

    kind: Kind = Kind.MODEL
    content_format: str  # "onnx", "tflite", "npz", ...
    name: str = "model"
    model_version: int = 1
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    target: str | None = None
    compression: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0  # unix seconds, UTC
    expires_at: int | None = None
    producer: str = ""
    payload: PayloadInfo | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model_version, int) or self.model_version < 0:
            raise ConfigError(f"model_version must be an int >= 0, got {self.model_version!r}")
        if self.expires_at is not None and self.expires_at <= self.created_at:
            raise ConfigError("expires_at must be later than created_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": Kind(self.kind).value,
            "content_format": self.content_format,
            "name": self.name,
            "model_version": self.model_version,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "target": self.target,
            "compression": dict(self.compression),
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "producer": self.producer,
            "payload": None if self.payload is None else self.payload.to_dict(),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> "Manifest":
        """Parse a manifest; any malformation is an InvalidPackage (it came from a file).

        The text goes through the bounded strict reader (:mod:`.strictjson`) and the
        object through :meth:`from_dict`, which checks every member the spec requires.
        """
        try:
            return cls.from_dict(strictjson.loads(data))
        except ValueError:  # JSONError and ManifestError are ValueErrors
            raise InvalidPackage() from None

    @classmethod
    def from_dict(cls, d: Any) -> "Manifest":
        """Strict: the members docs/format.md §2 requires, each of its type. Raises :class:`ManifestError`."""
        d = _members(d, "manifest")
        kind = _choice(Kind, d, "kind")
        specs = {}
        for member in ("inputs", "outputs"):
            items = _typed(d, member, list, "an array of tensor specs")
            specs[member] = tuple(_tensor(item, f"{member}[{i}]") for i, item in enumerate(items))
        target = _typed(d, "target", (str, type(None)), "a string or null")
        metadata = _typed(d, "metadata", dict, "an object of strings")
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise ManifestError(f"must be a string, got {_json_type(v)}", f"metadata.{k}")
        created = _int(d, "created_at")
        expires = None if _typed(d, "expires_at", (int, type(None)), "an integer or null") is None \
            else _int(d, "expires_at")
        if expires is not None and expires <= created:
            raise ManifestError("must be later than created_at", "expires_at")
        try:
            return cls(
                kind=kind,
                content_format=_str(d, "content_format"),
                name=_str(d, "name"),
                model_version=_int(d, "model_version"),
                inputs=specs["inputs"],
                outputs=specs["outputs"],
                target=target,
                compression=_typed(d, "compression", dict, "an object"),
                metadata=metadata,
                created_at=created,
                expires_at=expires,
                producer=_str(d, "producer"),
                payload=PayloadInfo.from_dict(_typed(d, "payload", dict, "an object")),
            )
        except ConfigError as exc:
            raise ManifestError(str(exc), "manifest") from None

    def validate(self) -> None:
        """Refuse, as :class:`ConfigError` naming the member, a manifest that a reader would refuse.

        Runs the reader's own checks (:func:`strictjson.check_value`, :meth:`from_dict`) on
        :meth:`to_dict`, so ``seal`` writes only what ``load`` accepts.
        """
        try:
            d = self.to_dict()
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"manifest cannot be sealed: {exc}") from None
        if d["payload"] is None:  # filled in by write_package; check everything else now
            d["payload"] = _PLACEHOLDER_PAYLOAD
        try:
            strictjson.check_value(d)
            Manifest.from_dict(d)
        except ValueError as exc:
            where = getattr(exc, "where", "") or "manifest"
            detail = str(exc).removeprefix(f"{where}: ")
            raise ConfigError(f"manifest member {where!r} cannot be sealed: {detail}; readers refuse such a "
                              "package (docs/format.md §2), so fix that value") from None


_PLACEHOLDER_PAYLOAD = {"cipher": "aes-256-gcm", "chunk_size": DEFAULT_CHUNK, "nonce_prefix": "00" * 7,
                        "codec": "none", "size": 0, "original_size": 0}


class ManifestError(ValueError):
    """A manifest member is missing or malformed; ``where`` names it (e.g. ``payload.chunk_size``)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, (list, tuple)) else "an object" if isinstance(value, dict) \
        else type(value).__name__


def _members(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"must be an object, got {_json_type(value)}", where)
    return value


def _path(key: str, parent: str) -> str:
    return key if parent in ("", "manifest") else f"{parent}.{key}"


def _typed(d: Mapping[str, Any], key: str, types: Any, what: str, parent: str = "") -> Any:
    if key not in d:
        raise ManifestError(f"is required ({what})", _path(key, parent))
    value = d[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ManifestError(f"must be {what}, got {_json_type(value)}", _path(key, parent))
    return value


def _as_tuple(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _str(d: Mapping[str, Any], key: str, parent: str = "") -> str:
    return _typed(d, key, str, "a string", parent)


def _int(d: Mapping[str, Any], key: str, parent: str = "") -> int:
    value = _typed(d, key, int, "an integer", parent)
    if not 0 <= value < 2**63:
        raise ManifestError(f"must be within 0..2**63-1, got {value}", _path(key, parent))
    return value


def _choice(enum: Any, d: Mapping[str, Any], key: str, parent: str = "") -> Any:
    value = _str(d, key, parent)
    try:
        return enum(value)
    except ValueError:
        raise ManifestError(f"must be one of {[e.value for e in enum]}, got {value!r}", _path(key, parent)) from None


def _tensor(item: Any, where: str) -> TensorSpec:
    """A tensor spec through :meth:`TensorSpec.from_dict`, its errors named by position."""
    if not isinstance(item, dict):
        raise ManifestError(f"must be a tensor spec object, got {_json_type(item)}", where)
    try:
        return TensorSpec.from_dict(item)
    except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
        raise ManifestError(str(exc) or type(exc).__name__, where) from None


def _known_digest(value: Any) -> v2.Digest | None:
    return v2.Digest._value2member_map_.get(value) if isinstance(value, str) else None


_HEX14 = re.compile(r"[0-9a-f]{14}")


def _hex(value: str) -> bytes:
    if not _HEX14.fullmatch(value):
        raise ManifestError("must be 14 lowercase hex digits", "payload.nonce_prefix")
    return bytes.fromhex(value)


# --- key slots -----------------------------------------------------------------------

_WRAPPED = crypto.KEY_SIZE + crypto.TAG_SIZE
_FP = crypto.FINGERPRINT_SIZE


@dataclass(frozen=True)
class KeySlot:
    """One wrapped copy of the content key. ``fingerprint`` is empty for passphrase slots."""

    type: int
    body: bytes

    @property
    def fingerprint(self) -> bytes:
        return self.body[:_FP] if self.type in (SlotType.X25519, SlotType.RAW) else b""

    def describe(self) -> str:
        if self.type == SlotType.X25519:
            return f"x25519 device key {self.fingerprint.hex()}"
        if self.type == SlotType.RAW:
            return f"raw 256-bit key {self.fingerprint.hex()}"
        if self.type == SlotType.PASSPHRASE:
            log2_n, r, p = self.body[16], self.body[17], self.body[18]
            return f"passphrase (scrypt N=2^{log2_n}, r={r}, p={p})"
        return f"unknown slot type {self.type} (ignored by this reader)"

    def to_bytes(self) -> bytes:
        return struct.pack(">BH", self.type, len(self.body)) + self.body

    def scrypt_work(self) -> int | None:
        """N * r * p of a passphrase slot within the format's bounds; None when out of bounds (never unwraps)."""
        log2_n, r, p = self.body[16], self.body[17], self.body[18]
        if not (1 <= log2_n <= MAX_SCRYPT_LOG2_N and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P) or (
            128 * r * 2**log2_n > MAX_SCRYPT_MEMORY
        ):
            return None
        return 2**log2_n * r * p

    def is_well_formed(self) -> bool:
        sizes = {SlotType.X25519: _FP + 32 + _WRAPPED, SlotType.PASSPHRASE: 16 + 3 + _WRAPPED,
                 SlotType.RAW: _FP + 16 + _WRAPPED}
        return self.type not in sizes or len(self.body) == sizes[SlotType(self.type)]

    def unwrap(self, key: Any, aad: bytes) -> bytes:
        """Content key from this slot with ``key`` (an X25519 private key, raw bytes or passphrase)."""
        body = self.body
        if self.type == SlotType.X25519:
            ephemeral = body[_FP : _FP + 32]
            shared = crypto.x25519_shared(key, ephemeral)
            device_public = crypto.raw_public(key.public_key())
            wrap_key = crypto.x25519_wrap_key(shared, ephemeral, device_public)
            return crypto.unwrap(wrap_key, body[_FP + 32 :], aad)
        if self.type == SlotType.RAW:
            return crypto.unwrap(crypto.raw_wrap_key(key, body[_FP : _FP + 16]), body[_FP + 16 :], aad)
        if self.type == SlotType.PASSPHRASE:
            salt, (log2_n, r, p) = body[:16], body[16:19]
            if self.scrypt_work() is None:
                raise InvalidPackage()
            return crypto.unwrap(crypto.scrypt_wrap_key(key, salt, log2_n, r, p), body[19:], aad)
        raise InvalidPackage()


@dataclass(frozen=True)
class DeviceRecipient:
    """Seal for one device's X25519 public key (32 raw bytes)."""

    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ConfigError("a device public key is 32 raw bytes (X25519)")

    def make_slot(self, content_key: bytes, aad: bytes, randbytes: crypto.RandBytes) -> KeySlot:
        ephemeral = X25519PrivateKey.from_private_bytes(randbytes(32))
        ephemeral_public = crypto.raw_public(ephemeral.public_key())
        shared = crypto.x25519_shared(ephemeral, self.public_key)
        wrap_key = crypto.x25519_wrap_key(shared, ephemeral_public, self.public_key)
        body = crypto.x25519_fingerprint(self.public_key) + ephemeral_public + crypto.wrap(wrap_key, content_key, aad)
        return KeySlot(SlotType.X25519, body)


@dataclass(frozen=True)
class PassphraseRecipient:
    """Seal for a passphrase, stretched with scrypt (N = 2**log2_n)."""

    passphrase: str = field(repr=False)
    log2_n: int = 15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not self.passphrase:
            raise ConfigError("passphrase must not be empty")
        if not (10 <= self.log2_n <= MAX_SCRYPT_LOG2_N and 1 <= self.r <= MAX_SCRYPT_R and 1 <= self.p <= MAX_SCRYPT_P):
            raise ConfigError(f"scrypt parameters out of range: log2_n 10..{MAX_SCRYPT_LOG2_N}, r 1..32, p 1..16")
        if 128 * self.r * 2**self.log2_n > MAX_SCRYPT_MEMORY:
            raise ConfigError("scrypt parameters need more than 1 GiB; readers refuse that")

    def make_slot(self, content_key: bytes, aad: bytes, randbytes: crypto.RandBytes) -> KeySlot:
        salt = randbytes(16)
        wrap_key = crypto.scrypt_wrap_key(self.passphrase, salt, self.log2_n, self.r, self.p)
        body = salt + bytes([self.log2_n, self.r, self.p]) + crypto.wrap(wrap_key, content_key, aad)
        return KeySlot(SlotType.PASSPHRASE, body)


@dataclass(frozen=True)
class RawKeyRecipient:
    """Seal for a raw 256-bit symmetric key."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != crypto.KEY_SIZE:
            raise ConfigError("a raw key is exactly 32 bytes")

    def make_slot(self, content_key: bytes, aad: bytes, randbytes: crypto.RandBytes) -> KeySlot:
        salt = randbytes(16)
        wrapped = crypto.wrap(crypto.raw_wrap_key(self.key, salt), content_key, aad)
        return KeySlot(SlotType.RAW, crypto.raw_key_fingerprint(self.key) + salt + wrapped)


Recipient = DeviceRecipient | PassphraseRecipient | RawKeyRecipient


# --- writing -------------------------------------------------------------------------


def write_package(
    payload: bytes,
    manifest: Manifest,
    recipients: Sequence[Recipient],
    signer: Ed25519PrivateKey | None,
    *,
    cipher: Cipher = Cipher.AES_256_GCM,
    codec: Codec = Codec.NONE,
    chunk_size: int = DEFAULT_CHUNK,
    version: int = FORMAT_VERSION,
    digest: v2.Digest | str | None = None,
    randbytes: crypto.RandBytes = os.urandom,
    _edit_manifest: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """Encrypt ``payload`` for ``recipients`` and sign with ``signer``. Fills ``manifest.payload``.

    ``version`` 2 (the default) adds a signed table of per-chunk digests (``digest``: by default
    BLAKE3; SHA-256 or BLAKE2b-256 on request); ``version=1`` writes the
    frozen v1 layout, for tests and old readers.

    The manifest is checked with the reader's own code first (:meth:`Manifest.validate`):
    what a reader would refuse is a :class:`ConfigError` here. ``_edit_manifest`` is for
    tests and invalid test vectors only: it rewrites the manifest bytes after that check,
    so a test can seal (and sign) a manifest no honest writer produces.
    """
    if version not in READ_VERSIONS:
        raise ConfigError(f"format version must be one of {READ_VERSIONS}, got {version!r}")
    if version == 1 and digest is not None:
        raise ConfigError("format v1 has no chunk digests; drop digest= or write version 2")
    if not recipients:
        raise ConfigError("seal for at least one recipient: a device key, a passphrase or a raw key")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ConfigError(f"chunk_size must be within {MIN_CHUNK}..{MAX_CHUNK}")
    cipher, codec = Cipher(cipher), Codec(codec)
    if version == 2:
        try:
            digest = v2.default_digest(cipher) if digest is None else v2.Digest(digest)
        except ValueError:
            raise ConfigError(f"unknown chunk digest {digest!r}; use one of "
                              f"{', '.join(d.value for d in v2.Digest)}") from None
    stored = zlib.compress(payload, 6) if codec is Codec.ZLIB else bytes(payload)
    content_key = randbytes(crypto.KEY_SIZE)
    info = PayloadInfo(
        cipher=cipher,
        chunk_size=chunk_size,
        nonce_prefix=randbytes(crypto.NONCE_PREFIX_SIZE),
        codec=codec,
        size=len(stored),
        original_size=len(payload),
        digest=digest,
    )
    full = replace(manifest, payload=info)
    full.validate()
    manifest_bytes = full.to_bytes()
    if _edit_manifest is not None:
        manifest_bytes = _edit_manifest(manifest_bytes)
    if len(manifest_bytes) > MAX_MANIFEST:
        raise ConfigError(f"manifest is {len(manifest_bytes)} bytes; keep metadata under {MAX_MANIFEST}")
    head = Header(version=version, manifest_len=len(manifest_bytes)).to_bytes() + manifest_bytes
    aad = hashlib.sha256(head).digest()

    slots = [r.make_slot(content_key, aad, randbytes) for r in recipients]
    if version == 2:
        return _write_v2(head, slots, info, content_key, stored, aad, signer)
    ciphertext = crypto.stream_encrypt(cipher, content_key, info.nonce_prefix, chunk_size, stored, aad)
    parts = [head, struct.pack(">H", len(slots)), *(s.to_bytes() for s in slots)]
    parts += [struct.pack(">Q", len(ciphertext)), ciphertext]
    if signer is None:
        parts.append(bytes([SignatureAlg.NONE]))
        return b"".join(parts)
    parts += [bytes([SignatureAlg.ED25519]), crypto.raw_public(signer.public_key())]
    unsigned = b"".join(parts)
    return unsigned + crypto.sign(signer, unsigned)


def _write_v2(head: bytes, slots: list[KeySlot], info: PayloadInfo, content_key: bytes, stored: bytes,
              aad: bytes, signer: Ed25519PrivateKey | None) -> bytes:
    """header | manifest | slots | digest table | signature | ct_len | ciphertext (docs/format.md §10)."""
    table, ciphertext = v2.encrypt(info.cipher, info.digest, content_key, info.nonce_prefix, info.chunk_size,
                                   stored, aad)
    parts = [head, struct.pack(">H", len(slots)), *(s.to_bytes() for s in slots), table]
    if signer is None:
        parts.append(bytes([SignatureAlg.NONE]))
    else:
        parts += [bytes([SignatureAlg.ED25519]), crypto.raw_public(signer.public_key())]
        signed = b"".join(parts)
        parts = [signed, signer.sign(v2.signature_message(signed))]
    return b"".join([*parts, struct.pack(">Q", len(ciphertext)), ciphertext])


def _seal_from_parts(
    payload: bytes,
    manifest: Manifest,
    recipients: Sequence[Recipient],
    signer: Ed25519PrivateKey | None,
    *,
    seed: bytes,
    **options: Any,
) -> bytes:
    """Deterministic :func:`write_package` for frozen test vectors: all randomness comes from ``seed``."""
    counter = 0

    def randbytes(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(b"edgeseal/test-vector-drbg" + seed + struct.pack(">Q", counter)).digest()
            counter += 1
        return out[:n]

    return write_package(payload, manifest, recipients, signer, randbytes=randbytes, **options)


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    public_key: bytes
    signature: bytes
    signed_len: int  # bytes covered: everything before the signature


@dataclass(frozen=True)
class Package:
    """A parsed package. Parsing checks structure only; nothing is authenticated yet."""

    data: memoryview
    header: Header
    manifest: Manifest
    manifest_bytes: bytes
    slots: tuple[KeySlot, ...]
    ciphertext: memoryview
    signature: Signature | None
    digest_table: memoryview | None = None  # v2: 32 bytes per ciphertext chunk, signed

    @property
    def aad(self) -> bytes:
        return hashlib.sha256(self.data[: HEADER_SIZE + self.header.manifest_len]).digest()

    @property
    def publisher(self) -> str | None:
        """Fingerprint of the signing key as written in the file (not yet verified)."""
        return None if self.signature is None else crypto.publisher_fingerprint(self.signature.public_key)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "Package":
        view = memoryview(data).cast("B")
        header = Header.from_bytes(view)
        pos = HEADER_SIZE + header.manifest_len
        manifest_bytes = bytes(_take(view, HEADER_SIZE, header.manifest_len))
        manifest = Manifest.from_bytes(manifest_bytes)
        (count,) = struct.unpack(">H", _take(view, pos, 2))
        pos += 2
        if count == 0 or count > MAX_SLOTS:
            raise InvalidPackage()
        slots = []
        for _ in range(count):
            slot_type, length = struct.unpack(">BH", _take(view, pos, 3))
            slot = KeySlot(slot_type, bytes(_take(view, pos + 3, length)))
            if not slot.is_well_formed():
                raise InvalidPackage()
            slots.append(slot)
            pos += 3 + length
        if header.version == 2:
            return cls._parse_v2_tail(view, pos, header, manifest, manifest_bytes, tuple(slots))
        (ct_len,) = struct.unpack(">Q", _take(view, pos, 8))
        info = manifest.payload
        if ct_len != crypto.ciphertext_size(info.size, info.chunk_size):
            raise InvalidPackage()
        ciphertext = _take(view, pos + 8, ct_len)
        pos += 8 + ct_len
        alg = _take(view, pos, 1)[0]
        signature = None
        if alg == SignatureAlg.ED25519:
            public = bytes(_take(view, pos + 1, 32))
            sig = bytes(_take(view, pos + 33, SIGNATURE_SIZE))
            signature = Signature(public, sig, pos + 33)
            pos += 33 + SIGNATURE_SIZE
        elif alg == SignatureAlg.NONE:
            pos += 1
        else:
            raise InvalidPackage()
        if pos != len(view):
            raise InvalidPackage()
        return cls(view, header, manifest, manifest_bytes, tuple(slots), ciphertext, signature)

    @classmethod
    def _parse_v2_tail(cls, view: memoryview, pos: int, header: Header, manifest: Manifest,
                       manifest_bytes: bytes, slots: tuple[KeySlot, ...]) -> "Package":
        """v2 after the slots: digest table | sig_alg [key | signature] | ct_len | ciphertext (§10)."""
        info = manifest.payload
        if info.digest is None:
            raise InvalidPackage()
        table_len = v2.table_size(info.size, info.chunk_size)
        table = _take(view, pos, table_len)
        pos += table_len
        alg = _take(view, pos, 1)[0]
        signature = None
        if alg == SignatureAlg.ED25519:
            public = bytes(_take(view, pos + 1, 32))
            signature = Signature(public, bytes(_take(view, pos + 33, SIGNATURE_SIZE)), pos + 33)
            pos += 33 + SIGNATURE_SIZE
        elif alg == SignatureAlg.NONE:
            pos += 1
        else:
            raise InvalidPackage()
        (ct_len,) = struct.unpack(">Q", _take(view, pos, 8))
        if ct_len != crypto.ciphertext_size(info.size, info.chunk_size) or pos + 8 + ct_len != len(view):
            raise InvalidPackage()
        ciphertext = _take(view, pos + 8, ct_len)
        return cls(view, header, manifest, manifest_bytes, slots, ciphertext, signature, table)

    def _verify_signature(self) -> None:
        sig = self.signature
        signed = self.data[: sig.signed_len]
        if self.header.version == 1:
            crypto.verify(sig.public_key, sig.signature, signed)
        else:
            crypto.verify_message(sig.public_key, sig.signature, v2.signature_message(signed))

    def authenticate(self, trusted: Iterable[bytes], *, allow_unsigned: bool = False) -> str | None:
        """Check the publisher signature against raw Ed25519 ``trusted`` keys, before any decryption.

        Returns the publisher fingerprint, or None for an unsigned package that was allowed.
        """
        trusted = {bytes(t) for t in trusted}
        if self.signature is None:
            if allow_unsigned:
                return None
            raise UnsignedPackage()
        if self.signature.public_key not in trusted:
            if not trusted and allow_unsigned:
                # No trust anchors and unsigned allowed: check integrity only, claim nothing.
                self._verify_signature()
                return None
            if not trusted:
                raise UntrustedPublisher(
                    f"sealed package is signed by publisher {self.publisher}, but no trusted publisher keys "
                    "were given; pass that publisher's public key as trusted (CLI: --trusted PUB)"
                )
            raise UntrustedPublisher(
                f"sealed package is signed by publisher {self.publisher}, which is not among the "
                f"{len(trusted)} trusted publisher key(s); add its public key to the trusted keys "
                "if you trust it, otherwise do not load this file"
            )
        self._verify_signature()
        return self.publisher

    def check_policy(self, *, min_version: int | None = None, now: float | None = None) -> None:
        """Rollback floor and expiry; call after :meth:`authenticate` so the values are authentic."""
        m = self.manifest
        if min_version is not None and m.model_version < min_version:
            raise RollbackRejected(
                f"model {m.name!r} version {m.model_version} is below the minimum version {min_version} "
                "this app accepts (rollback protection); install a newer package"
            )
        now = time.time() if now is None else now
        if m.expires_at is not None and now >= m.expires_at:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(m.expires_at))
            raise PackageExpired(f"model {m.name!r} expired at {when}; ask the publisher for a fresh package")

    def check_size(self, max_plaintext: int = DEFAULT_MAX_PLAINTEXT) -> None:
        """Refuse, before any decryption, a payload that would need more than ``max_plaintext`` bytes in memory."""
        info = self.manifest.payload
        need = max(info.size, info.original_size)
        if need > max_plaintext:
            raise LimitExceeded(
                f"package {self.manifest.name!r} holds {need:,} bytes of plaintext, above the "
                f"max_plaintext limit of {max_plaintext:,} bytes; if you expect a model that large, "
                f"pass a higher max_plaintext= (CLI: --max-plaintext)"
            )

    def content_key(self, key: Any, *, scrypt_budget: int = DEFAULT_SCRYPT_BUDGET) -> bytes:
        """Unwrap the content key with an X25519 private key, 32 raw key bytes, or a passphrase ``str``.

        Matching slots are tried in file order; the first that unwraps wins. Passphrase slots
        cost scrypt work (N * r * p); their sum over one call may not exceed ``scrypt_budget``,
        checked before each slot is tried, so a hostile file cannot make a load run for hours.
        """
        if isinstance(key, X25519PrivateKey):
            candidates = [s for s in self.slots if s.type == SlotType.X25519]
            fp = crypto.x25519_fingerprint(crypto.raw_public(key.public_key()))
            what = f"device key {fp.hex()}"
        elif isinstance(key, (bytes, bytearray)) and len(key) == crypto.KEY_SIZE:
            key = bytes(key)
            candidates = [s for s in self.slots if s.type == SlotType.RAW]
            fp = crypto.raw_key_fingerprint(key)
            what = f"raw key {fp.hex()}"
        elif isinstance(key, str):
            candidates = [s for s in self.slots if s.type == SlotType.PASSPHRASE]
            fp, what = b"", "a passphrase"
        else:
            raise ConfigError(
                f"cannot open a package with a {type(key).__name__}; give an X25519 device private key, "
                "a 32-byte raw key or a passphrase"
            )
        matching = [s for s in candidates if s.fingerprint == fp]
        if not matching:
            held = ", ".join(s.describe() for s in self.slots)
            raise NoMatchingKey(f"no key slot of this package is for {what}; it is sealed for: {held}")
        spent = 0
        for tried, slot in enumerate(matching):
            if slot.type == SlotType.PASSPHRASE:
                work = slot.scrypt_work()
                if work is None:
                    continue  # outside the format's scrypt bounds: this slot never unwraps
                if spent + work > scrypt_budget:
                    raise LimitExceeded(
                        f"trying passphrase slot {tried + 1} of {len(matching)} would take the scrypt work of "
                        f"this load to {spent + work:,} (N*r*p), above the scrypt_budget of {scrypt_budget:,}; "
                        "a package this costly to open is unusual; if you trust it, pass a higher scrypt_budget="
                    )
                spent += work
            try:
                return slot.unwrap(key, self.aad)
            except InvalidPackage:
                continue
        raise InvalidPackage()

    def decrypt(self, content_key: bytes) -> PlainBuffer:
        """The plaintext payload, decoded, in a wipeable buffer. Never touches a disk."""
        info = self.manifest.payload
        if self.header.version == 2:
            plain = v2.decrypt(info.cipher, info.digest, content_key, info.nonce_prefix, info.chunk_size,
                               self.ciphertext, info.size, self.aad, self.digest_table)
        else:
            plain = crypto.stream_decrypt(
                info.cipher, content_key, info.nonce_prefix, info.chunk_size, self.ciphertext, info.size, self.aad
            )
        if info.codec is Codec.NONE:
            return plain
        try:
            return _inflate(plain.view, info.original_size)
        finally:
            plain.wipe()


_INFLATE_STEP = 2**16


def _inflate(stored: memoryview, original_size: int) -> PlainBuffer:
    """Inflate a zlib stream into a buffer of exactly ``original_size`` bytes, 64 KiB at a time.

    Never holds more than ``original_size`` + 64 KiB of output, however much the stream
    would inflate to; the stream must end exactly at the end of ``stored`` and yield
    exactly ``original_size`` bytes (docs/format.md §3), else InvalidPackage.
    """
    out = PlainBuffer(original_size)
    inflater = zlib.decompressobj()
    done = taken = 0
    tail: bytes | memoryview = b""
    try:
        while not inflater.eof:
            if not tail:
                if taken >= len(stored):
                    raise InvalidPackage()  # the stream ends before its end marker
                tail = stored[taken : taken + _INFLATE_STEP]
                taken += len(tail)
            piece = inflater.decompress(tail, min(_INFLATE_STEP, original_size - done + 1))  # +1: overlong
            tail = inflater.unconsumed_tail
            if done + len(piece) > original_size:
                raise InvalidPackage()
            out.view[done : done + len(piece)] = piece
            done += len(piece)
            wipe_bytes(piece)
        if done != original_size or tail or inflater.unused_data or taken != len(stored):
            raise InvalidPackage()  # short output, or bytes after the end of the stream
    except zlib.error:
        out.wipe()
        raise InvalidPackage() from None
    except BaseException:
        out.wipe()
        raise
    return out


def max_package_size(max_plaintext: int = DEFAULT_MAX_PLAINTEXT) -> int:
    """The largest file a package whose plaintext fits ``max_plaintext`` can be (to refuse bigger files unread)."""
    slots = 2 + MAX_SLOTS * (3 + 0xFFFF)
    payload = 8 + crypto.ciphertext_size(max_plaintext, MIN_CHUNK)
    table = v2.table_size(max_plaintext, MIN_CHUNK)  # v2's digest table; v1 files have none
    return HEADER_SIZE + MAX_MANIFEST + slots + table + payload + 1 + 32 + SIGNATURE_SIZE


def _take(view: memoryview, start: int, length: int) -> memoryview:
    if start + length > len(view):
        raise InvalidPackage()
    return view[start : start + length]

