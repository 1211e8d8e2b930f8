"""The codebook tensor codec: bit-identical round trips, and hostile records refused with bounded memory."""

from __future__ import annotations

import lzma
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from edgeseal.runtime import codebook as cb
from edgeseal.runtime.errors import ConfigError, EdgesealError, InvalidPackage, LimitExceeded


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = np.uint32 if a.dtype.itemsize == 4 else np.uint8
    return np.array_equal(a.view(view), b.view(view))


def _clustered(rng: np.random.Generator, shape: tuple[int, ...], k: int, zeros: float = 0.0) -> np.ndarray:
    centroids = np.sort(rng.normal(size=k)).astype(np.float32)
    w = centroids[rng.integers(0, k, size=shape)]
    w[rng.random(shape) < zeros] = 0.0
    return w


@pytest.mark.parametrize("coding", list(cb.Coding))
@pytest.mark.parametrize("k", [1, 2, 3, 16, 17, 200, 256])
def test_round_trip_is_bit_identical(coding: cb.Coding, k: int) -> None:
    rng = np.random.default_rng(k)
    w = _clustered(rng, (12, 5, 3), k)
    enc = cb.encode(w)
    assert enc.bits == max(1, (len(np.unique(w)) - 1).bit_length())
    blob = cb.to_bytes(enc, coding)
    assert blob[:4] == b"ESCB" and blob[7] == coding.value
    assert _same_bits(cb.decode_bytes(blob), w)


def test_special_values_keep_their_bit_patterns() -> None:
    nan_payload = np.array([0x7FC00001], np.uint32).view(np.float32)[0]
    w = np.array([0.0, -0.0, np.inf, -np.inf, nan_payload, 1e-45, 3.5], np.float32)
    out = cb.decode_bytes(cb.to_bytes(cb.encode(w)))
    assert _same_bits(out, w)
    assert np.signbit(out[1]) and not np.signbit(out[0])


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_per_channel_groups_and_integer_codebooks(dtype: type) -> None:
    rng = np.random.default_rng(1)
    # 300 distinct values over the tensor, 16 per output channel: only per-channel groups hold it as float32
    w = np.stack([rng.integers(-100, 100, size=16)[rng.integers(0, 16, size=(4, 3, 3))] for _ in range(24)]).astype(dtype)
    enc = cb.encode(w, groups=24)
    assert enc.groups == 24 and enc.bits <= 4 and enc.dtype == np.dtype(dtype)
    for coding in cb.Coding:
        assert _same_bits(cb.decode_bytes(cb.to_bytes(enc, coding)), w)


def test_packing_every_width() -> None:
    rng = np.random.default_rng(2)
    for bits in range(1, 9):
        for n in (0, 1, 7, 8, 9, 1001):
            idx = rng.integers(0, 1 << bits, size=n).astype(np.uint8)
            packed = cb.pack_indices(idx, bits)
            assert len(packed) == (n * bits + 7) // 8
            assert np.array_equal(cb.unpack_indices(packed, n, bits), idx)
    # MSB first: 3-bit indices 5, 2, 7 -> 101 010 11|1 0000000
    assert cb.pack_indices(np.array([5, 2, 7], np.uint8), 3) == bytes([0b10101011, 0b10000000])


def test_scalars_and_empty_tensors() -> None:
    for w in (np.array(2.5, np.float32), np.zeros((0, 4), np.float32), np.ones((3, 0), np.int8)):
        assert _same_bits(cb.decode_bytes(cb.to_bytes(cb.encode(w))), w)


def test_auto_keeps_the_smallest_coding() -> None:
    rng = np.random.default_rng(3)
    w = _clustered(rng, (64, 64), 16, zeros=0.7)
    sizes = {c: len(cb.to_bytes(cb.encode(w), c)) for c in cb.Coding}
    auto = cb.to_bytes(cb.encode(w))
    assert len(auto) == min(sizes.values()) and len(auto) < sizes[cb.Coding.PACKED]
    # the order-0 entropy of the indices bounds what a symbol-by-symbol coder (Huffman/ANS) could reach
    assert cb.order0_entropy_bits(cb.unpack_indices(cb.encode(w).packed, w.size, 4)) < 4


def test_encoder_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ConfigError, match="cluster it first"):
        cb.encode(np.arange(300, dtype=np.float32))
    with pytest.raises(ConfigError, match="float32, int8 or uint8"):
        cb.encode(np.zeros(4, np.float64))
    with pytest.raises(ConfigError, match="groups=3 must divide"):
        cb.encode(np.zeros((4, 2), np.float32), groups=3)


def test_named_sets_round_trip_and_bound_all_tensors_together() -> None:
    rng = np.random.default_rng(4)
    tensors = {"conv.weight": _clustered(rng, (8, 1, 3, 3), 4), "fc.weight": _clustered(rng, (10, 32), 8, zeros=0.5)}
    blob = cb.encode_tensors(tensors, groups={"conv.weight": 8})
    out = cb.decode_tensors(blob)
    assert list(out) == list(tensors) and all(_same_bits(out[n], tensors[n]) for n in tensors)
    with pytest.raises(LimitExceeded):
        cb.decode_tensors(blob, max_elements=8 * 9 + 100)  # the first fits, the second does not


# --------------------------------------------------------------------------- hostile records


def _record(*, bits: int = 2, coding: int = 0, shape: tuple[int, ...] = (4,), groups: int = 1, entries: int = 4,
            books: bytes | None = None, stream: bytes = b"\x1b", dtype: int = 1, reserved: bytes = b"\0\0\0") -> bytes:
    head = struct.pack("<4sBBBBB3sIHHQ", b"ESCB", 1, dtype, bits, coding, len(shape), reserved, groups, entries, 0,
                       len(stream))
    books = books if books is not None else np.arange(groups * entries, dtype="<f4").tobytes()
    return head + struct.pack(f"<{len(shape)}Q", *shape) + books + stream


def test_hand_built_record_decodes() -> None:
    # indices 0,1,2,3 at 2 bits: 00 01 10 11 = 0x1b
    assert cb.decode_bytes(_record()).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("blob", [
    b"", b"ESCB", _record()[:-1], _record() + b"\0",
    _record().replace(b"ESCB", b"ESCX"),
    _record(bits=0), _record(bits=9), _record(bits=3),  # 3 bits is not the fewest for 4 entries
    _record(entries=5, books=np.zeros(5, "<f4").tobytes()),  # 5 entries do not fit 2 bits
    _record(entries=0, books=b""), _record(coding=4), _record(dtype=9), _record(reserved=b"\0\1\0"),
    _record(groups=0, books=b""), _record(groups=3, shape=(4,), books=np.zeros(12, "<f4").tobytes()),
    _record(shape=(2,), stream=b"\x1b"),  # padding bits not zero
    _record(entries=3, bits=2, books=np.zeros(3, "<f4").tobytes(), stream=b"\x1b"),  # index 3 >= 3 entries
    _record(shape=(1 << 62,)),
    _record(coding=1, stream=zlib.compress(b"\x1b") + b"x"),  # bytes after the zlib stream
    _record(coding=1, stream=zlib.compress(b"\x1b\x00")),  # inflates longer than declared
    _record(coding=1, stream=zlib.compress(b"\x1b")[:-2]),  # truncated
    _record(coding=2, stream=zlib.compress(bytes([0, 1, 2, 9]))),  # symbol wider than 2 bits
    _record(coding=3, stream=b"\xfd7zXZ\0garbage"),
])
def test_malformed_records_are_invalid_package(blob: bytes) -> None:
    with pytest.raises(InvalidPackage):
        cb.decode_bytes(blob)


def test_declared_size_over_the_limit_is_refused_before_allocating() -> None:
    blob = _record(shape=(1 << 20, 1 << 20), stream=b"")
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="max_elements"):
            cb.decode_bytes(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _peak_while_refused(blob: bytes) -> int:
    """Peak traced allocation while decode_bytes refuses ``blob`` with InvalidPackage."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidPackage):
            cb.decode_bytes(blob)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("coding", [1, 2, 3])
def test_decompression_bombs_stop_at_the_declared_size(coding: int) -> None:
    bomb = bytes(256 << 20)  # 256 MiB of zeros compresses to a few hundred KiB
    stream = lzma.compress(bomb, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE) if coding == 3 else zlib.compress(bomb, 9)
    peak = _peak_while_refused(_record(shape=(64,), coding=coding, stream=stream))
    # the declared 64 symbols plus the input (xz: plus the stream's dictionary, at most 8 MiB for so few symbols)
    assert peak < (10 << 20 if coding == 3 else 3 << 20)


def test_xz_dictionary_beyond_the_bound_is_refused_not_allocated() -> None:
    symbols = bytes(64)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 32 << 20}]  # 32 MiB for 64 symbols
    peak = _peak_while_refused(_record(shape=(64,), coding=3,
                                       stream=lzma.compress(symbols, format=lzma.FORMAT_XZ, filters=filters)))
    assert peak < 10 << 20
    ok = _record(shape=(64,), coding=3, stream=lzma.compress(symbols, format=lzma.FORMAT_XZ))  # xz's default: 8 MiB
    assert cb.decode_bytes(ok).tolist() == [0.0] * 64


def test_random_corruption_only_raises_typed_errors() -> None:
    rng = np.random.default_rng(5)
    good = [cb.to_bytes(cb.encode(_clustered(rng, (16, 9), 5, zeros=0.3)), c) for c in cb.Coding]
    good.append(cb.encode_tensors({"a": _clustered(rng, (8, 8), 3)}))
    for blob in good:
        for _ in range(150):
            bad = bytearray(blob)
            for pos in rng.integers(0, len(bad), size=rng.integers(1, 4)):
                bad[pos] = int(rng.integers(0, 256))
            cut = bytes(bad[: rng.integers(0, len(bad) + 1)]) if rng.random() < 0.3 else bytes(bad)
            try:
                (cb.decode_tensors if cut[:4] == b"ESCS" else cb.decode_bytes)(cut)
            except EdgesealError:
                pass
