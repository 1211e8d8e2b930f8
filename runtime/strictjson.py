"""A bounded, strict JSON reader for the cleartext manifest (docs/format.md §2.1).

The manifest is read before the signature is checked, so it is parsed as
hostile input: bounded nesting (checked before the recursive parser runs, so a
100 000-deep document costs one linear scan, not a ``RecursionError``), no
``NaN``/``Infinity`` literals, no number outside the IEEE double range, no
integer outside the int64 range (checked on the digit string, before any
conversion), no duplicate member, no lone surrogate, and a JSON object at the
top. Every violation is a :class:`JSONError` (a ``ValueError``) naming where.

:func:`check_value` applies the same value rules to a Python object tree, so the
writer (``seal``) refuses exactly what this reader refuses.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

__all__ = ["JSONError", "MAX_DEPTH", "INT_MIN", "INT_MAX", "loads", "check_value"]

MAX_DEPTH = 64  # arrays/objects nested in one another, the top-level object counting as 1
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = 19  # int64 fits in 19 digits; longer digit strings are rejected before int()
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONError(ValueError):
    """The manifest text is not JSON this format accepts; ``where`` is a JSON-pointer-like path."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def nesting_depth(data: bytes) -> int:
    """Deepest array/object nesting of a JSON text, in one vectorised pass (strings are skipped)."""
    bare = _STRING.sub(b'""', data)
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max()) if len(steps) else 0


def _constant(name: str) -> Any:
    raise JSONError(f"{name} is not JSON; numbers must be finite")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise JSONError(f"integer {text[:24]}... is outside the 64-bit range")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise JSONError(f"integer {text} is outside the 64-bit range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONError(f"number {text[:24]} overflows a 64-bit float")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JSONError(f"member {dup!r} appears twice in one object")
    return out


def loads(data: bytes | memoryview) -> dict[str, Any]:
    """Parse UTF-8 JSON text whose top-level value is an object; raise :class:`JSONError` otherwise."""
    raw = bytes(data)
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise JSONError(f"nested {depth} deep; at most {MAX_DEPTH} levels are allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONError("not valid UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer,
                           parse_float=_float)
    except JSONError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise JSONError(f"not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise JSONError("the manifest must be a JSON object")
    check_value(value)
    return value


def check_value(value: Any, where: str = "", depth: int = 1) -> None:
    """Check a Python value is one this format's JSON can carry: dict (str keys), list/tuple, str without
    lone surrogates, bool, None, int in the int64 range, finite float; nested at most MAX_DEPTH deep."""
    if isinstance(value, (dict, list, tuple)):
        if depth > MAX_DEPTH:
            raise JSONError(f"nested more than {MAX_DEPTH} levels deep", where)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise JSONError(f"member names must be strings, got {type(key).__name__}", where)
                _check_text(key, where)
                check_value(item, f"{where}.{key}" if where else key, depth + 1)
        else:
            for i, item in enumerate(value):
                check_value(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        _check_text(value, where)
    elif value is None or isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise JSONError(f"integer {value} is outside the 64-bit range", where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise JSONError(f"{value} is not a finite number", where)
    else:
        raise JSONError(f"a {type(value).__name__} is not a JSON value (use str, int, float, bool, None, "
                        "list or dict)", where)


def _check_text(text: str, where: str) -> None:
    if _SURROGATE.search(text):
        raise JSONError("text holds a lone UTF-16 surrogate, which UTF-8 cannot encode", where)
