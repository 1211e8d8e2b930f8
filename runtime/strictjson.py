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
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONError(ValueError):
    """The manifest text is not JSON this format accepts; ``where`` is a JSON-pointer-like path."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


_SCAN_CHUNK = 2**18


def nesting_depth(data: bytes) -> int:
    """Deepest array/object nesting of a JSON text, brackets inside strings not counted.

    Vectorised over 256 KiB chunks (linear time, about 1 MiB of scratch memory whatever the
    input): a quote preceded by an odd run of backslashes is escaped; the others toggle
    "inside a string". Exact for valid JSON; for invalid text the parser rejects it anyway.
    """
    codes = np.frombuffer(data, dtype=np.uint8)
    depth = deepest = 0
    inside = 0  # 1 while inside a string
    run = 0  # backslashes ending the previous chunk
    for start in range(0, len(codes), _SCAN_CHUNK):
        c = codes[start : start + _SCAN_CHUNK]
        m = len(c)
        idx = np.arange(m, dtype=np.int32)
        last_plain = np.maximum.accumulate(np.where(c != 0x5C, idx, -1))  # last non-backslash at or before j
        before = np.empty(m, dtype=np.int32)  # backslashes immediately before j
        before[0] = run
        prev = last_plain[:-1]
        before[1:] = np.where(prev >= 0, idx[1:] - 1 - prev, idx[1:] + run)
        quotes = (c == 0x22) & (before % 2 == 0)
        parity = (np.cumsum(quotes, dtype=np.int32) + inside) & 1
        outside = parity == 0
        steps = (((c == 0x5B) | (c == 0x7B)) & outside).astype(np.int32)
        steps -= ((c == 0x5D) | (c == 0x7D)) & outside
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        depth, inside = int(running[-1]), int(parity[-1])
        run = run + m if last_plain[-1] < 0 else m - 1 - int(last_plain[-1])
    return deepest


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
    # Numbers were checked by the hooks and depth by the scan. A lone surrogate can only come from a
    # \uD800-\uDFFF escape (UTF-8 cannot carry one), so strings are walked only when the text has one.
    if _SURROGATE_ESCAPE.search(raw):
        _check_strings(value)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_strings(value: Any) -> None:
    """Iterative walk (no recursion, no path strings: linear and cheap) for lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE.search(item):
                raise JSONError("a string holds a lone UTF-16 surrogate, which UTF-8 cannot encode")
        elif kind is dict:
            for key, member in item.items():
                if _SURROGATE.search(key):
                    raise JSONError(f"member name {key[:40]!r} holds a lone UTF-16 surrogate")
                stack.append(member)
        elif kind is list:
            stack.extend(item)


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
