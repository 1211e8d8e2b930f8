"""Every single-bit flip and every truncation of a sealed package fails with the typed error."""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import InvalidPackage, UntrustedPublisher, crypto
from edgeseal.runtime.format import (
    HEADER_SIZE,
    DeviceRecipient,
    Manifest,
    Package,
    RawKeyRecipient,
    write_package,
)

RAW = bytes(range(32))


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def small_signed(request, small_onnx_model, publisher, device):
    if request.param == 2:
        return edgeseal.seal(small_onnx_model, publisher=publisher, devices=[device])
    return write_package(small_onnx_model, Manifest(content_format="onnx"),
                         [DeviceRecipient(crypto.raw_public(device.public_key()))], publisher, version=1)


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def small_unsigned(request):
    """Unsigned, raw key, one chunk of 640 bytes: the AEAD (and in v2 the digest table) must catch every change."""
    return write_package(b"edgeseal" * 80, Manifest(content_format="bin"), [RawKeyRecipient(RAW)], None,
                         chunk_size=1024, version=request.param)


def _open_signed(data, publisher, device):
    package = Package.parse(data)
    package.authenticate([crypto.raw_public(publisher.public_key())])
    package.check_policy()
    return package.decrypt(package.content_key(device))


def _open_unsigned(data):
    package = Package.parse(data)
    package.authenticate([], allow_unsigned=True)
    return package.decrypt(package.content_key(RAW))


def _flips(data: bytes):
    for offset in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[offset] ^= 1 << bit
            yield offset, bytes(flipped)


def test_signed_package_opens_before_tampering(small_signed, small_onnx_model, publisher, device):
    assert bytes(_open_signed(small_signed, publisher, device).view) == small_onnx_model


def test_every_bit_flip_of_signed_package_is_rejected(small_signed, publisher, device):
    key_start = Package.parse(small_signed).signature.signed_len - 32  # the publisher key, before the signature
    assert Package.parse(small_signed).header.version in (1, 2)
    seen = {}
    for offset, flipped in _flips(small_signed):
        with pytest.raises(InvalidPackage) as err:
            _open_signed(flipped, publisher, device)
        expected = UntrustedPublisher if key_start <= offset < key_start + 32 else InvalidPackage
        assert type(err.value) is expected, (offset, type(err.value))
        seen[type(err.value)] = seen.get(type(err.value), 0) + 1
    assert seen[UntrustedPublisher] == 32 * 8
    assert seen[InvalidPackage] == (len(small_signed) - 32) * 8


def test_every_bit_flip_of_unsigned_package_fails_aead(small_unsigned):
    assert bytes(_open_unsigned(small_unsigned).view) == b"edgeseal" * 80
    for offset, flipped in _flips(small_unsigned):
        with pytest.raises(InvalidPackage):
            _open_unsigned(flipped)


@pytest.mark.parametrize("which", ["signed", "unsigned"])
def test_truncation_at_every_offset_is_rejected(which, small_signed, small_unsigned, publisher, device):
    data = small_signed if which == "signed" else small_unsigned
    for end in range(len(data)):
        with pytest.raises(InvalidPackage):
            if which == "signed":
                _open_signed(data[:end], publisher, device)
            else:
                _open_unsigned(data[:end])
    with pytest.raises(InvalidPackage):  # and appending is no better
        _open_unsigned(small_unsigned + b"\x00")


def test_stream_chunks_cannot_be_reordered_dropped_or_swapped():
    from edgeseal.runtime.crypto import Cipher, stream_decrypt, stream_encrypt

    key, prefix, aad, cs = bytes(32), bytes(7), b"aad", 1024
    plain = np.random.default_rng(0).bytes(3 * cs)
    ct = stream_encrypt(Cipher.AES_256_GCM, key, prefix, cs, plain, aad)
    c = [ct[i * (cs + 16) : (i + 1) * (cs + 16)] for i in range(3)]
    assert bytes(stream_decrypt(Cipher.AES_256_GCM, key, prefix, cs, memoryview(ct), 3 * cs, aad).view) == plain
    cases = {
        "reordered": (c[1] + c[0] + c[2], 3 * cs),
        "last chunk dropped": (c[0] + c[1], 2 * cs),  # chunk 1 was not sealed as final
        "first chunk dropped": (c[1] + c[2], 2 * cs),
        "chunk repeated": (c[0] + c[0] + c[2], 3 * cs),
    }
    for name, (data, size) in cases.items():
        with pytest.raises(InvalidPackage):
            stream_decrypt(Cipher.AES_256_GCM, key, prefix, cs, memoryview(data), size, aad)
    other = stream_encrypt(Cipher.AES_256_GCM, key, prefix, cs, plain, b"another manifest")
    with pytest.raises(InvalidPackage):  # a chunk from a package with another manifest
        stream_decrypt(Cipher.AES_256_GCM, key, prefix, cs, memoryview(c[0] + other[cs + 16 :]), 3 * cs, aad)


def test_header_round_trips_and_rejects_unknown_versions():
    from edgeseal.runtime.format import Header

    header = Header(manifest_len=1234)
    raw = header.to_bytes()
    assert len(raw) == HEADER_SIZE and raw[:8] == b"\x89ESEAL\r\n" and raw[8:10] == b"\x00\x02"
    assert Header.from_bytes(raw) == header
    assert Header.from_bytes(raw[:8] + b"\x00\x01" + raw[10:]) == Header(version=1, manifest_len=1234)
    for bad in (raw[:8] + b"\x00\x03" + raw[10:], raw[:8] + b"\x00\x00" + raw[10:], raw[:10] + b"\x00\x01" + raw[12:], b"PK" + raw[2:]):
        with pytest.raises(InvalidPackage):
            Header.from_bytes(bad)


def test_zlib_payload_must_end_exactly_at_the_stream_end():
    """A decrypted zlib stream followed by extra bytes, or inflating to another size, is rejected."""
    import json
    import struct
    import zlib

    from edgeseal.runtime import crypto as c
    from edgeseal.runtime.format import Header, RawKeyRecipient

    def forge(stored: bytes, original_size: int) -> bytes:
        content_key, prefix = bytes(range(32)), bytes(7)
        manifest = Manifest(content_format="bin", created_at=1).to_dict()
        manifest["payload"] = {"cipher": "aes-256-gcm", "chunk_size": 1024, "nonce_prefix": prefix.hex(),
                               "codec": "zlib", "size": len(stored), "original_size": original_size}
        body = json.dumps(manifest).encode()
        head = Header(version=1, manifest_len=len(body)).to_bytes() + body  # the v1 layout, built by hand
        aad = __import__("hashlib").sha256(head).digest()
        slot = RawKeyRecipient(RAW).make_slot(content_key, aad, lambda n: bytes(n))
        ct = c.stream_encrypt(c.Cipher.AES_256_GCM, content_key, prefix, 1024, stored, aad)
        return head + struct.pack(">H", 1) + slot.to_bytes() + struct.pack(">Q", len(ct)) + ct + b"\x00"

    content = b"edgeseal " * 300
    good = zlib.compress(content)
    assert bytes(_open_unsigned(forge(good, len(content))).view) == content
    for stored, size in [(good + b"trailing", len(content)), (good, len(content) - 1), (good, len(content) + 1),
                         (good[:-4], len(content))]:
        with pytest.raises(InvalidPackage):
            _open_unsigned(forge(stored, size))


def test_manifest_rules_from_the_spec_are_enforced():
    from edgeseal.runtime.format import Manifest as M

    base = write_package(b"x" * 10, Manifest(content_format="bin"), [RawKeyRecipient(RAW)], None)
    mlen = int.from_bytes(base[12:16], "big")
    text = base[16 : 16 + mlen].decode()
    assert M.from_bytes(text.encode()).content_format == "bin"
    prefix = Package.parse(base).manifest.payload.nonce_prefix.hex()
    for bad in (text.replace(prefix, prefix.upper()) if prefix != prefix.upper() else text.replace(prefix, "ZZ"),
                text.replace('"name":"model"', '"name":"model","name":"other"'),
                text.replace('"model_version":1', '"model_version":9223372036854775808'),
                text.replace('"model_version":1', '"model_version":true')):
        with pytest.raises(InvalidPackage):
            M.from_bytes(bad.encode())
