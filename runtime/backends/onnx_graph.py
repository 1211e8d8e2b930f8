"""Which graph inputs/outputs of an ONNX model declare a shape: a minimal protobuf walk, no ``onnx``.

ONNX Runtime reports the shape ``[]`` both for a scalar and for a tensor whose rank is unknown
(no ``shape`` in its type), so a spec read from a session alone cannot tell ``float32[]`` from
``float32[*]``. This module reads just enough of the ModelProto to tell them apart:

    ModelProto.graph (7) -> GraphProto.input (11) / output (12) -> ValueInfoProto
    ValueInfoProto: name (1), type (2) -> TypeProto
    TypeProto: tensor_type (1) -> Tensor: shape (2) present or not;  optional_type (9) -> elem_type (1)

Anything it cannot read leaves the answer unknown, which callers treat as "rank unknown":
never wrong, only less checked.
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["declared_shapes", "fields", "spans"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def spans(buf, start: int = 0, end: int | None = None, partial: bool = False
          ) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, field start, value start, value end) for each field of the message in
    ``buf[start:end]`` (positions are in ``buf``). A varint's value is at value start..value end.
    ``partial``: the message is cut off at ``end``; stop quietly at a field that runs past it.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            _, value_end = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            value_end = pos + size
        elif wire in (_I64, _I32):
            value_end = pos + (8 if wire == _I64 else 4)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if value_end > end:
            if partial:
                if wire == _LEN:
                    yield number, wire, first, pos, pos
                return
            raise ValueError("truncated field")
        yield number, wire, first, pos, value_end
        pos = value_end


def fields(buf: memoryview, partial: bool = False) -> Iterator[tuple[int, int, memoryview | int | None]]:
    """(field number, wire type, value) for each field of one protobuf message.

    A length-delimited value is a memoryview, a varint an int, a fixed 32/64-bit value None.
    ``partial``: ``buf`` is a prefix of the message; stop quietly at a field cut off by its end
    (a cut length-delimited field is yielded empty). The one ONNX wire reader: ``edgeseal.targets.ops``
    and :mod:`._onnx_external` use it too.
    """
    for number, wire, _, start, stop in spans(buf, 0, len(buf), partial):
        if wire == _LEN:
            yield number, wire, buf[start:stop]
        elif wire == _VARINT:
            yield number, wire, _varint(buf, start)[0]
        else:
            yield number, wire, None


def _submessages(buf: memoryview, number: int) -> list[memoryview]:
    return [v for n, w, v in fields(buf) if n == number and w == _LEN]


def _has_shape(type_proto: memoryview) -> bool | None:
    """True/False for a tensor (or optional tensor) type with/without a shape; None for other types."""
    for tensor in _submessages(type_proto, 1):
        return any(n == 2 and w == _LEN for n, w, _ in fields(tensor))
    for optional in _submessages(type_proto, 9):
        for elem in _submessages(optional, 1):
            return _has_shape(elem)
    return None


def declared_shapes(model: bytes | bytearray | memoryview) -> dict[str, bool]:
    """Name -> whether the graph input/output declares a shape (tensor and optional-tensor values only).

    Returns {} when the bytes cannot be read this way; callers then assume the rank is unknown.
    """
    try:
        graphs = _submessages(memoryview(model).cast("B"), 7)
        if len(graphs) != 1:
            return {}
        out: dict[str, bool] = {}
        values = [v for n, w, v in fields(graphs[0]) if n in (11, 12) and w == _LEN]  # one pass: input, output
        for value_info in values:
            names = _submessages(value_info, 1)
            types = _submessages(value_info, 2)
            if len(names) != 1 or len(types) != 1:
                continue
            shaped = _has_shape(types[0])
            if shaped is not None:
                out[bytes(names[0]).decode("utf-8")] = shaped
        return out
    except (ValueError, UnicodeDecodeError, TypeError):
        return {}
