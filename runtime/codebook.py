"""Codebook (weight-sharing) tensors: bit-packed indices into small float32 codebooks, entropy-coded.

A clustered weight tensor (``edgeseal.converters.cluster``) holds at most 256
distinct float32 values per group (an int8 / uint8 tensor always does). This codec stores it as

* one codebook per group — the distinct values, as their exact bit
  patterns (so ``-0.0``, ``+0.0`` and NaN payloads survive; decoding is
  bit-identical, not merely close), groups being equal slices along axis 0
  (1 group: per tensor; ``shape[0]`` groups: per output channel);
* for every element, in C order, its index into its group's codebook, ``bits``
  wide (1..8, the fewest that hold the largest codebook), packed MSB-first;
* the index stream entropy-coded with one of :class:`Coding` (``auto`` keeps the smallest).

It depends on numpy and the standard library only (the device runtime uses it).
Decoding checks every declared size against the blob and against a caller limit
*before* allocating, so a hostile blob costs at most ``max_elements`` elements of
memory; anything malformed raises :class:`InvalidPackage`, a declared size over the
limit :class:`LimitExceeded`. The byte layout is ``docs/format.md`` §11 ("codebook
tensor record").

    >>> enc = encode(w)                  # w: float32, at most 256 distinct values (per group)
    >>> blob = to_bytes(enc)             # record: header, codebooks, coded indices
    >>> np.array_equal(decode_bytes(blob).view(np.uint32), w.view(np.uint32))
    True
"""

from __future__ import annotations

import dataclasses
import enum
import lzma
import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ConfigError, InvalidPackage, LimitExceeded

__all__ = [
    "Coding",
    "EncodedTensor",
    "MAGIC",
    "VERSION",
    "MAX_ELEMENTS",
    "encode",
    "decode",
    "to_bytes",
    "from_bytes",
    "decode_bytes",
    "pack_indices",
    "unpack_indices",
    "encode_tensors",
    "decode_tensors",
    "order0_entropy_bits",
    "EXTERNAL_LOCATION",
    "CONTENT_FORMAT",
    "MODEL_MAGIC",
    "BLOB_ALIGN",
    "blob_layout",
    "weights_blob",
    "pack_model",
    "unpack_model",
    "check_graph",
    "session",
]

MAGIC = b"ESCB"
#: the ``location`` an ONNX graph gives the initializers a record set supplies (they are never in a file)
EXTERNAL_LOCATION = "edgeseal:codebook"
#: the manifest ``content_format`` of a payload that is a codebook model container (docs/format.md §11)
CONTENT_FORMAT = "onnx+codebook"
MODEL_MAGIC = b"ESCM"
#: each decoded tensor starts at a multiple of this in the weights blob ORT reads
BLOB_ALIGN = 64
VERSION = 1
MAX_DIMS = 8
MAX_ENTRIES = 256
#: default limit on the elements one record may declare (1 GiB of float32); callers can lower or raise it
MAX_ELEMENTS = 1 << 28
#: element types a record can hold: code -> numpy dtype of the values (codebook entries are stored at its width)
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("i1"), 3: np.dtype("u1")}
_CODES = {dt: code for code, dt in DTYPES.items()}
# magic, version, dtype, bits, coding, ndim, reserved(3), groups u32, entries u16, reserved u16, stream length u64
_HEAD = struct.Struct("<4sBBBBB3sIHHQ")
_LZMA_MAX_DICT = 64 << 20
_LZMA_DEFAULT_DICT = 8 << 20
_LZMA_OVERHEAD = 1 << 20  # the LZMA2 decoder's state besides its dictionary is well under 1 MiB


class Coding(int, enum.Enum):
    """How the index stream is stored. ``PACKED``: the bit-packed indices as they are; ``ZLIB_PACKED``:
    zlib (RFC 1950) of them; ``ZLIB_BYTES`` / ``LZMA_BYTES``: zlib / xz (no integrity check) of one byte
    per index — byte-aligned symbols let deflate's Huffman stage and LZMA's range coder model them."""

    PACKED = 0
    ZLIB_PACKED = 1
    ZLIB_BYTES = 2
    LZMA_BYTES = 3


@dataclasses.dataclass(frozen=True)
class EncodedTensor:
    """A float32 tensor as codebooks + bit-packed indices (before entropy coding).

    ``codebooks`` is ``(groups, entries)`` of ``dtype`` (float32 kept as its uint32 bit patterns); ``packed`` the
    ``bits``-wide indices of the ``prod(shape)`` elements in C order, MSB first, zero-padded.
    """

    shape: tuple[int, ...]
    bits: int
    codebooks: np.ndarray = dataclasses.field(repr=False)
    packed: bytes = dataclasses.field(repr=False)
    dtype: np.dtype = np.dtype("<f4")

    @property
    def groups(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def entries(self) -> int:
        return int(self.codebooks.shape[1])

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def nbytes(self) -> int:
        """Codebooks plus packed indices, before entropy coding and without the record header."""
        return self.codebooks.size * self.dtype.itemsize + len(self.packed)


def _bits_for(entries: int) -> int:
    return max(1, (entries - 1).bit_length())


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """``bits``-wide indices, MSB first, concatenated and zero-padded to whole bytes."""
    idx = np.ascontiguousarray(indices, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return idx.tobytes()
    planes = np.unpackbits(idx[:, None], axis=1)[:, 8 - bits:]  # (n, bits), MSB first
    return np.packbits(planes.reshape(-1)).tobytes()


def unpack_indices(packed: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """The ``count`` indices of a packed stream (uint8). The caller has checked ``len(packed)``."""
    raw = np.frombuffer(packed, dtype=np.uint8)
    if bits == 8:
        return raw[:count].copy()
    if count == 0:
        return np.zeros(0, np.uint8)
    # each index lies within one 16-bit window starting at its first byte
    offsets = np.arange(count, dtype=np.int64) * bits
    first = offsets >> 3
    padded = np.concatenate([raw, np.zeros(1, np.uint8)])
    window = (padded[first].astype(np.uint16) << 8) | padded[first + 1]
    shift = (16 - bits - (offsets & 7)).astype(np.uint16)
    return ((window >> shift) & ((1 << bits) - 1)).astype(np.uint8)


def encode(weights: np.ndarray, *, groups: int = 1) -> EncodedTensor:
    """Codebooks and packed indices of a float32 (or int8 / uint8) tensor with at most 256 distinct values per group.

    ``groups`` splits axis 0 into equal slices with one codebook each (``weights.shape[0]``: per
    channel). Values are compared as bit patterns, so decoding returns exactly ``weights``.
    Raises ``ConfigError`` for other dtypes, a group count that does not divide axis 0, or a group
    with more than 256 distinct values (cluster the tensor first).
    """
    w = np.asarray(weights)
    dtype = w.dtype.newbyteorder("<") if w.dtype.itemsize > 1 else w.dtype
    if dtype not in _CODES:
        raise ConfigError(f"codebook encoding takes float32, int8 or uint8 weights, got {w.dtype}; cast or cluster them first")
    w = w.astype(dtype, copy=False)
    if w.ndim > MAX_DIMS:
        raise ConfigError(f"codebook encoding takes at most {MAX_DIMS} dimensions, got {w.ndim}")
    if groups < 1 or (w.ndim == 0 and groups != 1) or (w.ndim and w.shape[0] % groups):
        raise ConfigError(f"groups={groups} must divide axis 0 of a tensor of shape {w.shape} (1 = one codebook)")
    bits_view = np.uint32 if dtype.itemsize == 4 else np.uint8
    flat = np.ascontiguousarray(w).view(bits_view).reshape(groups, -1)
    books, rows = [], []
    for g in range(groups):
        values, inverse = np.unique(flat[g], return_inverse=True)
        if len(values) > MAX_ENTRIES:
            raise ConfigError(
                f"group {g} of a tensor of shape {w.shape} has {len(values)} distinct values; a codebook holds at "
                f"most {MAX_ENTRIES}: cluster it first (edgeseal.converters.cluster)")
        books.append(values)
        rows.append(inverse.astype(np.uint8))
    entries = max(1, max((len(b) for b in books), default=1))
    table = np.zeros((groups, entries), bits_view)
    for g, b in enumerate(books):
        table[g, : len(b)] = b
        if len(b) < entries and len(b):  # unused slots repeat the last value: never referenced
            table[g, len(b):] = b[-1]
    bits = _bits_for(entries)
    indices = np.concatenate(rows) if rows else np.zeros(0, np.uint8)
    return EncodedTensor(tuple(int(d) for d in w.shape), bits, table, pack_indices(indices, bits), dtype)


def decode(enc: EncodedTensor) -> np.ndarray:
    """The tensor an :class:`EncodedTensor` stands for (bit-identical to what was encoded)."""
    n = enc.size
    idx = unpack_indices(enc.packed, n, enc.bits)
    if idx.size and int(idx.max()) >= enc.entries:
        raise InvalidPackage()
    per_group = n // enc.groups if enc.groups else 0
    if enc.groups == 1:
        out = enc.codebooks[0][idx]
    else:
        out = np.take_along_axis(enc.codebooks, idx.reshape(enc.groups, per_group).astype(np.intp), axis=1)
    return out.reshape(enc.shape).view(np.dtype(enc.dtype).newbyteorder("="))


# --------------------------------------------------------------------------- the record


def _deflate(data: bytes) -> bytes:
    """The smallest zlib stream of ``data`` over deflate's strategies: plain LZ77 + Huffman, or Huffman alone
    (an order-0 prefix code, the better fit for skewed index symbols), or run-length. One decoder reads all."""
    def run(strategy: int) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, strategy)
        return c.compress(data) + c.flush()

    return min((run(s) for s in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE)), key=len)


def _code(stream: bytes, coding: Coding, count: int, bits: int) -> bytes:
    if coding is Coding.PACKED:
        return stream
    if coding is Coding.ZLIB_PACKED:
        return _deflate(stream)
    symbols = unpack_indices(stream, count, bits).tobytes()
    if coding is Coding.ZLIB_BYTES:
        return _deflate(symbols)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6 | lzma.PRESET_EXTREME, "dict_size": _lzma_dict(count)}]
    return lzma.compress(symbols, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE, filters=filters)


def _lzma_dict(count: int) -> int:
    """The LZMA2 dictionary for ``count`` symbols: no larger than the data (the decoder allocates all of it)."""
    return min(max(count, 4096), _LZMA_MAX_DICT)


def to_bytes(enc: EncodedTensor, coding: Coding | str | int = "auto") -> bytes:
    """The record of ``enc`` (docs/format.md §11). ``coding="auto"`` tries every :class:`Coding`, keeps the smallest."""
    if coding == "auto":
        streams = [(c, _code(enc.packed, c, enc.size, enc.bits)) for c in Coding]
        chosen, stream = min(streams, key=lambda cs: (len(cs[1]), cs[0].value))
    else:
        try:
            chosen = Coding[coding.upper()] if isinstance(coding, str) else Coding(coding)
        except (KeyError, ValueError):
            raise ConfigError(f"coding={coding!r} must be 'auto' or one of {', '.join(c.name.lower() for c in Coding)}") from None
        stream = _code(enc.packed, chosen, enc.size, enc.bits)
    head = _HEAD.pack(MAGIC, VERSION, _CODES[enc.dtype], enc.bits, chosen.value, len(enc.shape), b"\0\0\0",
                      enc.groups, enc.entries, 0, len(stream))
    dims = struct.pack(f"<{len(enc.shape)}Q", *enc.shape)
    return head + dims + enc.codebooks.astype(enc.codebooks.dtype.newbyteorder("<")).tobytes() + stream


def _bounded_inflate(data: memoryview, size: int, coding: Coding) -> bytes:
    """Exactly ``size`` bytes out of a zlib or xz stream that must end there; never more in memory."""
    try:
        if coding is Coding.LZMA_BYTES:
            # a stream whose dictionary is larger than max(declared output, 8 MiB) is refused, not allocated
            # (8 MiB: what xz's default preset uses, so other writers' streams read)
            limit = min(max(size, _LZMA_DEFAULT_DICT), _LZMA_MAX_DICT) + _LZMA_OVERHEAD
            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=limit)
            out = d.decompress(bytes(data), max_length=size)
            if not d.eof:  # one more byte: the end of the stream, or proof that it is too long
                out += d.decompress(b"", max_length=1)
            done = d.eof and not d.unused_data
        else:
            d = zlib.decompressobj()
            out = d.decompress(data, size)
            if not d.eof:
                out += d.decompress(d.unconsumed_tail, 1)
            done = d.eof and not d.unused_data and not d.unconsumed_tail
    except (zlib.error, lzma.LZMAError, EOFError, MemoryError):
        raise InvalidPackage() from None
    if not done or len(out) != size:
        raise InvalidPackage()
    return out


def from_bytes(blob: bytes | bytearray | memoryview, *, max_elements: int = MAX_ELEMENTS) -> EncodedTensor:
    """Parse and check one record. Sizes are checked against the blob and ``max_elements`` before anything is
    allocated; every malformed record is ``InvalidPackage``, a tensor over ``max_elements`` ``LimitExceeded``."""
    view = memoryview(blob).cast("B")
    if len(view) < _HEAD.size:
        raise InvalidPackage()
    magic, version, dtype, bits, coding, ndim, reserved, groups, entries, reserved2, length = _HEAD.unpack_from(view)
    if (magic != MAGIC or version != VERSION or dtype not in DTYPES or not 1 <= bits <= 8 or ndim > MAX_DIMS
            or reserved != b"\0\0\0" or reserved2 != 0 or coding not in Coding._value2member_map_
            or not 1 <= entries <= min(MAX_ENTRIES, 1 << bits) or bits != _bits_for(entries) or groups < 1):
        raise InvalidPackage()
    pos = _HEAD.size
    if len(view) < pos + 8 * ndim:
        raise InvalidPackage()
    shape = struct.unpack_from(f"<{ndim}Q", view, pos)
    pos += 8 * ndim
    if any(d >= 1 << 62 for d in shape):
        raise InvalidPackage()
    count = math.prod(shape)
    if count > max_elements:
        raise LimitExceeded(
            f"a codebook tensor declares {count:,} elements, over the limit of {max_elements:,}; pass a larger "
            "max_elements if the model really is that large")
    if (ndim == 0 and groups != 1) or (ndim and shape[0] % groups) or (count == 0 and groups != 1) or groups > max(1, count):
        raise InvalidPackage()
    dt = DTYPES[dtype]
    book_bytes = dt.itemsize * groups * entries
    if len(view) != pos + book_bytes + length:
        raise InvalidPackage()
    store = "<u4" if dt.itemsize == 4 else "u1"
    books = np.frombuffer(view, dtype=store, count=groups * entries, offset=pos).astype(np.uint32 if dt.itemsize == 4
                                                                                        else np.uint8)
    books = books.reshape(groups, entries)
    stream = view[pos + book_bytes:]
    packed_size = (count * bits + 7) // 8
    c = Coding(coding)
    if c is Coding.PACKED:
        if length != packed_size:
            raise InvalidPackage()
        packed = bytes(stream)
    elif c is Coding.ZLIB_PACKED:
        packed = _bounded_inflate(stream, packed_size, c)
    else:
        symbols = np.frombuffer(_bounded_inflate(stream, count, c), dtype=np.uint8)
        if symbols.size and int(symbols.max()) >= 1 << bits:
            raise InvalidPackage()
        packed = pack_indices(symbols, bits)
    if count * bits % 8 and packed[-1] & ((1 << (8 - count * bits % 8)) - 1):
        raise InvalidPackage()  # padding bits must be zero: one record per tensor, no hidden bytes
    return EncodedTensor(tuple(int(d) for d in shape), int(bits), books, packed, dt)


def decode_bytes(blob: bytes | bytearray | memoryview, *, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """The tensor of one record (see :func:`from_bytes` for the checks)."""
    return decode(from_bytes(blob, max_elements=max_elements))


# --------------------------------------------------------------------------- many tensors

_SET_MAGIC = b"ESCS"
_SET_HEAD = struct.Struct("<4sBxxxI")
_ENTRY = struct.Struct("<HQ")


def encode_tensors(tensors: Mapping[str, np.ndarray], *, coding: Coding | str | int = "auto",
                   groups: Mapping[str, int] | None = None) -> bytes:
    """A set of named records (docs/format.md §11.2), in the order given."""
    parts = [_SET_HEAD.pack(_SET_MAGIC, VERSION, len(tensors))]
    for name, w in tensors.items():
        raw = name.encode("utf-8")
        if not raw or len(raw) > 0xFFFF:
            raise ConfigError(f"tensor name {name!r} must be 1..65535 UTF-8 bytes")
        record = to_bytes(encode(w, groups=(groups or {}).get(name, 1)), coding)
        parts += [_ENTRY.pack(len(raw), len(record)), raw, record]
    return b"".join(parts)


def decode_tensors(blob: bytes | bytearray | memoryview, *, max_elements: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """The named float32 tensors of a set; ``max_elements`` bounds all of them together."""
    view = memoryview(blob).cast("B")
    if len(view) < _SET_HEAD.size:
        raise InvalidPackage()
    magic, version, n = _SET_HEAD.unpack_from(view)
    if magic != _SET_MAGIC or version != VERSION or n > len(view) // (_ENTRY.size + 1):
        raise InvalidPackage()
    pos, out, left = _SET_HEAD.size, {}, max_elements
    for _ in range(n):
        if len(view) < pos + _ENTRY.size:
            raise InvalidPackage()
        name_len, rec_len = _ENTRY.unpack_from(view, pos)
        pos += _ENTRY.size
        if name_len == 0 or len(view) < pos + name_len + rec_len:
            raise InvalidPackage()
        try:
            name = bytes(view[pos:pos + name_len]).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPackage() from None
        pos += name_len
        if name in out:
            raise InvalidPackage()
        enc = from_bytes(view[pos:pos + rec_len], max_elements=left)
        left -= enc.size
        out[name] = decode(enc)
        pos += rec_len
    if pos != len(view):
        raise InvalidPackage()
    return out


def order0_entropy_bits(indices: np.ndarray) -> float:
    """Shannon entropy (bits per symbol) of the index distribution: the floor of any symbol-by-symbol code
    (Huffman, ANS) that ignores context, to judge the general-purpose coders against."""
    counts = np.bincount(np.asarray(indices, np.uint8).reshape(-1), minlength=1).astype(np.float64)
    p = counts[counts > 0] / counts.sum() if counts.sum() else np.ones(1)
    return float(-(p * np.log2(p)).sum())


def session(graph: bytes | bytearray | memoryview, records: bytes | bytearray | memoryview, *,
            options: Any = None, max_elements: int = MAX_ELEMENTS) -> Any:
    """An ONNX Runtime session of ``graph`` (a ModelProto whose encoded initializers are external at
    :data:`EXTERNAL_LOCATION`, offsets as :func:`blob_layout`) on the tensors of ``records``, decoded into one
    buffer ORT reads in place (``add_external_initializers_from_files_in_memory``): no weight touches a file.
    The buffer is kept on the session as ``_edgeseal_weights`` (ORT does not own it)."""
    import onnxruntime as ort

    from .backends.onnxruntime import raw_session

    blob, layout = weights_blob(records, max_elements=max_elements)
    check_graph(graph, layout)
    opts = options or ort.SessionOptions()
    opts.add_external_initializers_from_files_in_memory([EXTERNAL_LOCATION], [blob], [blob.size])
    sess = raw_session(bytes(graph), opts)
    sess._edgeseal_weights = blob
    return sess


# --------------------------------------------------------------------------- the model container (onnx+codebook)

_MODEL_HEAD = struct.Struct("<4sB3xQ")


def pack_model(graph: bytes, records: bytes) -> bytes:
    """The ``onnx+codebook`` payload: header, the ONNX graph (its encoded initializers external at
    :data:`EXTERNAL_LOCATION`, offsets as :func:`blob_layout` gives them), then the record set."""
    return _MODEL_HEAD.pack(MODEL_MAGIC, VERSION, len(graph)) + bytes(graph) + bytes(records)


def unpack_model(payload: bytes | bytearray | memoryview) -> tuple[memoryview, memoryview]:
    """(graph, record set) views of an ``onnx+codebook`` payload; InvalidPackage when malformed."""
    view = memoryview(payload).cast("B")
    if len(view) < _MODEL_HEAD.size:
        raise InvalidPackage()
    magic, version, graph_len = _MODEL_HEAD.unpack_from(view)
    if magic != MODEL_MAGIC or version != VERSION or graph_len > len(view) - _MODEL_HEAD.size:
        raise InvalidPackage()
    start = _MODEL_HEAD.size
    return view[start:start + graph_len], view[start + graph_len:]


def blob_layout(shapes: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[dict[str, tuple[int, int]], int]:
    """(name -> (offset, length), blob size): tensors in order, each at the next multiple of :data:`BLOB_ALIGN`."""
    layout, pos = {}, 0
    for name, (shape, dtype) in shapes.items():
        pos = -(-pos // BLOB_ALIGN) * BLOB_ALIGN
        length = math.prod(shape) * np.dtype(dtype).itemsize
        layout[name] = (pos, length)
        pos += length
    return layout, pos


def weights_blob(records: bytes | bytearray | memoryview, *, max_elements: int = MAX_ELEMENTS
                 ) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Decode a record set straight into one zeroed uint8 buffer laid out by :func:`blob_layout` (the in-memory
    file ORT reads the weights from) and return it with the layout."""
    tensors = decode_tensors(records, max_elements=max_elements)
    layout, size = blob_layout({n: (a.shape, a.dtype) for n, a in tensors.items()})
    blob = np.zeros(max(size, 1), np.uint8)
    for name, arr in tensors.items():
        offset, length = layout[name]
        blob[offset:offset + length] = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        arr.fill(0)
    return blob, layout


def check_graph(graph: bytes | bytearray | memoryview, layout: Mapping[str, tuple[int, int]]) -> None:
    """InvalidPackage unless the graph's initializers at :data:`EXTERNAL_LOCATION` are exactly the record set's
    tensors, each at its :func:`blob_layout` offset and length (docs/format.md §11.4). Reads the protobuf wire
    format directly: ModelProto.graph (7) -> GraphProto.initializer (5) -> TensorProto name (8),
    external_data (13: key 1, value 2), data_location (14)."""
    from .backends.onnx_graph import fields

    found: dict[str, tuple[int, int]] = {}
    try:
        for number, wire, graph_msg in fields(memoryview(graph).cast("B")):
            if number != 7 or wire != 2:
                continue
            for n2, w2, tensor in fields(graph_msg):
                if n2 != 5 or w2 != 2:
                    continue
                name, entries = None, {}
                for n3, w3, value in fields(tensor):
                    if n3 == 8 and w3 == 2:
                        name = bytes(value).decode("utf-8")
                    elif n3 == 13 and w3 == 2:
                        kv = {k: bytes(v).decode("utf-8") for k, w4, v in fields(value) if w4 == 2}
                        entries[kv.get(1, "")] = kv.get(2, "")
                if entries.get("location") == EXTERNAL_LOCATION:
                    if name is None or name in found:
                        raise InvalidPackage()
                    found[name] = (int(entries.get("offset", "0")), int(entries["length"]))
    except (ValueError, KeyError, UnicodeDecodeError):
        raise InvalidPackage() from None
    if found != dict(layout):
        raise InvalidPackage()
