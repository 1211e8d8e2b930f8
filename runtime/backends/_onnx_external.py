"""Hand an ONNX model's weights to ONNX Runtime from memory, without ORT copying them.

``onnxruntime.InferenceSession(model_bytes)`` parses the whole protobuf (copying every
weight into protobuf strings) and then copies each initializer again into its own
tensor. For a 91 MB model that is most of the session's build time. Here the weights
stay where they are: :func:`externalize` rewrites only the graph, so that every large
``raw_data`` initializer becomes an *external* initializer whose ``location`` is a named
in-memory file, ``offset`` its position in the model buffer and ``length`` its size;
ORT is then given the small graph plus the untouched model buffer through
``SessionOptions.add_external_initializers_from_files_in_memory`` and builds its tensors
on that memory in place (a copy only where a kernel repacks weights anyway).

The weights are the same bytes at the same values, so the model computes exactly what
it computes when loaded from bytes (tests/runtime/test_onnx_external.py compares outputs
bit for bit). The buffer must outlive the session; the backend keeps a reference.

Wire format (onnx.proto3): ModelProto.graph = 7; GraphProto.initializer = 5;
TensorProto: data_type 2, raw_data 9, external_data 13 (StringStringEntryProto: key 1,
value 2), data_location 14 (EXTERNAL = 1). Only the top-level graph's initializers move;
subgraphs, sparse and typed-field (``float_data`` …) initializers stay as they are.
Anything unexpected (a second graph field, an initializer with two ``raw_data`` fields, the
name :data:`LOCATION` anywhere else in the graph) returns None and the caller loads the bytes
the ordinary way; an initializer already external elsewhere stays as it is.
"""

from __future__ import annotations

from .onnx_graph import spans as _spans

__all__ = ["LOCATION", "MIN_BYTES", "externalize"]

LOCATION = "edgeseal-in-memory-weights"
MIN_BYTES = 1024  # smaller initializers stay inline: not worth an external reference
_VARINT, _LEN = 0, 2
_GRAPH, _INITIALIZER = 7, 5
_RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 9, 13, 14


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    return _len_field(_EXTERNAL_DATA, _len_field(1, key.encode()) + _len_field(2, value.encode()))


def _tensor(buf: memoryview, start: int, end: int) -> tuple[bytes, int] | None:
    """(the TensorProto at buf[start:end] with its raw_data made external, raw_data size), or None to leave it inline."""
    raw = None
    kept = []
    for number, _, first, value_start, value_end in _spans(buf, start, end):
        if number == _RAW_DATA:
            if raw is not None:
                return None
            raw = (value_start, value_end)
            continue
        if number in (_EXTERNAL_DATA, _DATA_LOCATION):
            return None
        kept.append((first, value_end))
    if raw is None or raw[1] - raw[0] < MIN_BYTES:
        return None
    out = bytearray()
    for first, value_end in kept:
        out += buf[first:value_end]
    out += _entry("location", LOCATION)
    out += _entry("offset", str(raw[0]))
    out += _entry("length", str(raw[1] - raw[0]))
    out += _encode_varint(_DATA_LOCATION << 3 | _VARINT) + _encode_varint(1)
    return bytes(out), raw[1] - raw[0]


def externalize(model: bytes | bytearray | memoryview) -> tuple[bytes, int] | None:
    """(graph bytes, bytes moved out) for ``model`` with its large initializers pointing into ``model`` itself.

    The offsets are positions in ``model``: pass ``model`` whole as the in-memory file named
    :data:`LOCATION`. None when nothing would move or the bytes are not read this way.
    """
    buf = model if isinstance(model, bytes) else memoryview(model).cast("B")
    try:
        top = list(_spans(buf, 0, len(buf)))
        graphs = [s for s in top if s[0] == _GRAPH and s[1] == _LEN]
        if len(graphs) != 1:
            return None
        _, _, graph_first, graph_start, graph_end = graphs[0]
        pieces = []
        run = graph_start  # start of the current run of fields copied unchanged
        moved = rewritten_count = 0
        for number, wire, first, value_start, value_end in _spans(buf, graph_start, graph_end):
            if number != _INITIALIZER or wire != _LEN:
                continue
            rewritten = _tensor(buf, value_start, value_end)
            if rewritten is not None:
                pieces.append(buf[run:first])
                pieces.append(_len_field(_INITIALIZER, rewritten[0]))
                moved += rewritten[1]
                rewritten_count += 1
                run = value_end
        pieces.append(buf[run:graph_end])
    except (ValueError, IndexError):
        return None
    if not moved:
        return None
    graph = b"".join(pieces)
    # Only references written here may point into the model's memory: a model that names LOCATION
    # itself (say, an external initializer in a subgraph with offsets of its own choosing) is loaded
    # the ordinary way.
    if graph.count(LOCATION.encode()) != rewritten_count:
        return None
    return b"".join(_len_field(_GRAPH, graph) if first == graph_first else buf[first:value_end]
                    for _, _, first, _, value_end in top), moved
