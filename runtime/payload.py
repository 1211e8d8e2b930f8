"""Format v2 payload: chunked AEAD plus a signed table of per-chunk digests (docs/format.md §10).

In v1 the Ed25519 signature covers the whole file, so a reader hashes every
ciphertext byte for the signature and then reads every byte again to decrypt.
v2 signs a small prefix that ends with a table ``T`` of one digest per
ciphertext chunk; the reader verifies that signature first (microseconds), then
makes one pass over the payload in which each chunk is hashed, compared with
its table entry, and decrypted straight into its slice of one output buffer,
chunks spread over a few threads (the hashes and AEADs used here release the GIL).

Why a collision-resistant digest and not the AEAD tag: every device the
package is sealed for knows the content key, and with the key GCM and Poly1305
tags are linear functions an attacker can solve for. A holder of one device key
could otherwise replace chunks (keeping each tag) in a package the publisher
signed for many devices. A hash is the only thing here a key holder cannot forge.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum

from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes

from . import crypto
from ._memory import PlainBuffer
from .crypto import TAG_SIZE, Cipher, chunk_count, chunk_nonce, each_in_parallel
from .errors import InvalidPackage

__all__ = ["Digest", "DIGEST_SIZE", "default_digest", "chunk_digest", "table_size", "encrypt", "decrypt",
           "signature_message"]

DIGEST_SIZE = 32
SIGNATURE_LABEL = b"edgeseal/v2/signature\x00"


class Digest(str, Enum):
    """Per-chunk digest (docs/format.md §10.2). BLAKE3 is the default (see :func:`default_digest`)."""

    SHA256 = "sha-256"
    BLAKE2B_256 = "blake2b-256"
    BLAKE3 = "blake3"


def default_digest(cipher: Cipher) -> Digest:
    """The digest ``seal`` writes unless told otherwise: BLAKE3, whatever the cipher.

    Measured in bench/seal_load.py on this project's x86 machine (with SHA and AVX-512
    instructions), BLAKE3 has several times SHA-256's throughput per thread
    (bench/results/seal_load.md, floor table). On cores without SHA instructions (the Raspberry
    Pi 4's Cortex-A72) software SHA-256 costs about 11.6 cycles per byte and BLAKE3's NEON code
    hashes four 1 KiB chunks at once; that it is faster there too is expected, not measured here.
    ``digest="sha-256"`` or ``"blake2b-256"`` writes packages that readers predating BLAKE3 open
    (docs/COMPATIBILITY.md).
    """
    Cipher(cipher)
    return Digest.BLAKE3


def chunk_digest(digest: Digest, data: bytes | memoryview) -> bytes:
    """The 32-byte digest of one ciphertext chunk (tag included). Releases the GIL for large chunks."""
    if digest is Digest.BLAKE3:
        return blake3(data).digest()  # the Rust binding releases the GIL; 32-byte output by default
    if digest is Digest.SHA256:
        # cryptography's hash releases the GIL; CPython 3.11's hashlib.sha256 does not scale over threads.
        h = hashes.Hash(hashes.SHA256())
        h.update(data)
        return h.finalize()
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def table_size(size: int, chunk_size: int) -> int:
    return DIGEST_SIZE * chunk_count(size, chunk_size)


def encrypt(
    cipher: Cipher, digest: Digest, key: bytes, prefix: bytes, chunk_size: int, plaintext: bytes, aad: bytes
) -> tuple[bytes, bytes]:
    """(digest table, ciphertext): the v1 STREAM ciphertext and the digest of each of its chunks."""
    ciphertext = crypto.stream_encrypt(cipher, key, prefix, chunk_size, plaintext, aad)
    view = memoryview(ciphertext)
    step = chunk_size + TAG_SIZE
    table = b"".join(chunk_digest(digest, view[i * step : (i + 1) * step])
                     for i in range(chunk_count(len(plaintext), chunk_size)))
    return table, ciphertext


def decrypt(
    cipher: Cipher, digest: Digest, key: bytes, prefix: bytes, chunk_size: int, ciphertext: memoryview,
    size: int, aad: bytes, table: bytes | memoryview, *, threads: int | None = None,
) -> PlainBuffer:
    """One pass: per chunk, check its digest against ``table``, then decrypt it into its slice of the output.

    A chunk is decrypted only after its digest matched, so no byte the publisher did not sign
    reaches the AEAD. Wipes the output and raises InvalidPackage on any failure.
    """
    n = chunk_count(size, chunk_size)
    if len(ciphertext) != size + TAG_SIZE * n or len(table) != DIGEST_SIZE * n:
        raise InvalidPackage()
    digest = Digest(digest)
    aead = cipher.aead(key)
    plain = PlainBuffer(size)
    failed = []  # set by a worker; the others stop at their next chunk

    def open_chunk(i: int) -> None:
        if failed:
            return
        start, end = i * chunk_size, min((i + 1) * chunk_size, size)
        offset = i * (chunk_size + TAG_SIZE)
        chunk = ciphertext[offset : offset + (end - start) + TAG_SIZE]
        if not hmac.compare_digest(chunk_digest(digest, chunk), table[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]):
            failed.append(i)
            return
        try:
            aead.decrypt_into(chunk_nonce(prefix, i, i == n - 1), chunk, aad, out[start:end])
        except (InvalidTag, ValueError):
            failed.append(i)

    out = plain.view
    each_in_parallel(open_chunk, n, threads if size >= crypto.PARALLEL_MIN_BYTES else 1)
    if failed:
        plain.wipe()
        raise InvalidPackage()
    return plain


def signature_message(signed_bytes: bytes | memoryview) -> bytes:
    """What Ed25519 signs in v2: a domain tag and SHA-256 of every byte before the 64 signature bytes.

    Those bytes end with the digest table, so they are small (32 bytes per chunk) and the
    signature is checked before a single payload byte is read.
    """
    return SIGNATURE_LABEL + hashlib.sha256(signed_bytes).digest()

