"""The cryptographic steps of format v1, one function each (see docs/format.md §4-§6).

Nothing here parses files or decides policy; ``format.py`` does that. Every
failure of an authenticity check raises a bare :class:`InvalidPackage`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._memory import PlainBuffer
from .errors import InvalidPackage

__all__ = [
    "Cipher",
    "KEY_SIZE",
    "TAG_SIZE",
    "NONCE_PREFIX_SIZE",
    "FINGERPRINT_SIZE",
    "ciphertext_size",
    "stream_encrypt",
    "stream_decrypt",
    "chunk_nonce",
    "raw_public",
    "x25519_fingerprint",
    "raw_key_fingerprint",
    "publisher_fingerprint",
    "x25519_wrap_key",
    "raw_wrap_key",
    "scrypt_wrap_key",
    "wrap",
    "unwrap",
    "signature_message",
]

KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
FINGERPRINT_SIZE = 16
_ZERO_NONCE = bytes(12)


class Cipher(str, Enum):
    """Payload AEAD. AES-256-GCM where the CPU has AES instructions, ChaCha20-Poly1305 elsewhere."""

    AES_256_GCM = "aes-256-gcm"
    CHACHA20_POLY1305 = "chacha20-poly1305"

    def aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        return AESGCM(key) if self is Cipher.AES_256_GCM else ChaCha20Poly1305(key)


# --- payload: STREAM-style chunked AEAD -------------------------------------------------


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks for ``size`` plaintext bytes; an empty payload is one empty final chunk."""
    return max(1, -(-size // chunk_size))


def ciphertext_size(size: int, chunk_size: int) -> int:
    return size + TAG_SIZE * chunk_count(size, chunk_size)


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """nonce = prefix (7) || chunk index (u32 big-endian) || final flag (1 byte, 0x01 on the last chunk)."""
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def stream_encrypt(
    cipher: Cipher, key: bytes, prefix: bytes, chunk_size: int, plaintext: bytes, aad: bytes
) -> bytes:
    aead = cipher.aead(key)
    n = chunk_count(len(plaintext), chunk_size)
    if n >= 2**32:
        raise ValueError("payload too large for 2**32 chunks; raise chunk_size")
    out = bytearray(ciphertext_size(len(plaintext), chunk_size))
    src, dst = memoryview(plaintext), memoryview(out)
    for i in range(n):
        part = src[i * chunk_size : (i + 1) * chunk_size]
        start = i * (chunk_size + TAG_SIZE)
        aead.encrypt_into(
            chunk_nonce(prefix, i, i == n - 1), part, aad, dst[start : start + len(part) + TAG_SIZE]
        )
    return bytes(out)


def stream_decrypt(
    cipher: Cipher, key: bytes, prefix: bytes, chunk_size: int, ciphertext: memoryview, size: int, aad: bytes,
    *, threads: int | None = None,
) -> PlainBuffer:
    """Decrypt into a fresh :class:`PlainBuffer`; wipe it and raise InvalidPackage on any failure.

    Chunks are independent, so large payloads are decrypted by several threads
    (the AEAD releases the GIL); each writes its own slice of the one buffer.
    """
    n = chunk_count(size, chunk_size)
    if len(ciphertext) != size + TAG_SIZE * n:
        raise InvalidPackage()
    aead = cipher.aead(key)
    plain = PlainBuffer(size)

    def decrypt_range(first: int, stop: int) -> None:
        for i in range(first, stop):
            start = i * chunk_size
            end = min(start + chunk_size, size)
            offset = i * (chunk_size + TAG_SIZE)
            ct = ciphertext[offset : offset + (end - start) + TAG_SIZE]
            aead.decrypt_into(chunk_nonce(prefix, i, i == n - 1), ct, aad, plain.view[start:end])

    try:
        in_parallel(decrypt_range, n, threads if size >= PARALLEL_MIN_BYTES else 1)
    except (InvalidTag, ValueError):
        plain.wipe()
        raise InvalidPackage() from None
    return plain


PARALLEL_MIN_BYTES = 8 * 2**20


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def in_parallel(work: Callable[[int, int], object], n: int, threads: int | None = None) -> list:
    """Run ``work(first, stop)`` over ``range(n)`` split into contiguous ranges, one per thread."""
    threads = max(1, min(n, threads or default_threads()))
    bounds = [(n * t // threads, n * (t + 1) // threads) for t in range(threads)]
    if threads == 1:
        return [work(0, n)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda b: work(*b), bounds))


def each_in_parallel(work: Callable[[int], object], n: int, threads: int | None = None) -> None:
    """Run ``work(i)`` for every i in ``range(n)`` on up to ``threads`` threads, each taking the next index
    when it is free: a thread the OS schedules less (a busy machine) does less of the work, instead of
    holding up the others with a fixed share."""
    threads = max(1, min(n, threads or default_threads()))
    if threads == 1:
        for i in range(n):
            work(i)
        return
    indices = itertools.count()  # next() on it is atomic under the GIL

    def worker() -> None:
        for i in indices:
            if i >= n:
                return
            work(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()


# --- fingerprints ---------------------------------------------------------------------


def raw_public(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_fingerprint(public: bytes) -> bytes:
    return hashlib.sha256(b"edgeseal/v1/fingerprint/x25519" + public).digest()[:FINGERPRINT_SIZE]


def raw_key_fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"edgeseal/v1/fingerprint/raw" + key).digest()[:FINGERPRINT_SIZE]


def publisher_fingerprint(public: bytes) -> str:
    """Short human form of an Ed25519 publisher key, as the CLI prints it."""
    digest = hashlib.sha256(b"edgeseal/v1/fingerprint/ed25519" + public).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


# --- key slots: derive a wrap key, AES-256-GCM-wrap the 32-byte content key ---------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(ikm)


def x25519_wrap_key(shared: bytes, ephemeral_public: bytes, device_public: bytes) -> bytes:
    if shared == bytes(32):
        raise InvalidPackage()  # low-order point
    return _hkdf(shared, ephemeral_public + device_public, b"edgeseal/v1/slot/x25519")


def x25519_shared(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise InvalidPackage() from None


def raw_wrap_key(key: bytes, salt: bytes) -> bytes:
    return _hkdf(key, salt, b"edgeseal/v1/slot/raw")


def scrypt_wrap_key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_SIZE, n=2**log2_n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def wrap(wrap_key: bytes, content_key: bytes, aad: bytes) -> bytes:
    """Every wrap key is fresh (new ephemeral key or salt per slot), so the all-zero nonce is safe."""
    return AESGCM(wrap_key).encrypt(_ZERO_NONCE, content_key, aad)


def unwrap(wrap_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(wrap_key).decrypt(_ZERO_NONCE, wrapped, aad)
    except InvalidTag:
        raise InvalidPackage() from None


# --- publisher signature --------------------------------------------------------------


HASH_BLOCK = 2**20


def signed_digest(signed_bytes: memoryview | bytes, *, threads: int | None = None) -> bytes:
    """SHA-256 over the per-block SHA-256 of the signed bytes (1 MiB blocks, hashed in parallel).

    digest = SHA-256("edgeseal/v1/blocks" || len (u64) || SHA-256(block_0) || SHA-256(block_1) || ...)
    """
    view = memoryview(signed_bytes).cast("B")
    total = len(view)
    blocks = max(1, -(-total // HASH_BLOCK))

    def hash_range(first: int, stop: int) -> list[bytes]:
        return [hashlib.sha256(view[j * HASH_BLOCK : (j + 1) * HASH_BLOCK]).digest() for j in range(first, stop)]

    parts = in_parallel(hash_range, blocks, threads if total >= PARALLEL_MIN_BYTES else 1)
    outer = hashlib.sha256(b"edgeseal/v1/blocks" + struct.pack(">Q", total))
    for part in parts:
        for h in part:
            outer.update(h)
    return outer.digest()


def signature_message(signed_bytes: memoryview | bytes) -> bytes:
    """Ed25519 signs a domain tag plus :func:`signed_digest` of every byte before the signature."""
    return b"edgeseal/v1/signature\x00" + signed_digest(signed_bytes)


def sign(key: Ed25519PrivateKey, signed_bytes: memoryview | bytes) -> bytes:
    return key.sign(signature_message(signed_bytes))


def verify(public: bytes, signature: bytes, signed_bytes: memoryview | bytes) -> None:
    """Check a v1 signature over ``signed_bytes`` (every byte before the signature)."""
    verify_message(public, signature, signature_message(signed_bytes))


def verify_message(public: bytes, signature: bytes, message: bytes) -> None:
    """Ed25519 over ``message``, already built with its version's domain tag; InvalidPackage if it fails."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise InvalidPackage() from None


RandBytes = Callable[[int], bytes]
