"""Plaintext buffers that can be written in place and wiped (best effort).

Backends want an immutable ``bytes`` object (``onnxruntime.InferenceSession(bytes)``,
``Interpreter(model_content=bytes)``). Decrypting into a ``bytearray`` and then calling
``bytes(...)`` would leave a second plaintext copy nobody can wipe. On CPython we
instead allocate one ``bytes`` object and expose its storage as a writable
``memoryview`` through ctypes: the AEAD decrypts straight into it, the backend gets
it without a copy, and :func:`wipe` zeroes it afterwards.

Limits (also in docs/threat-model.md): this is best effort. The backend may copy
what it parses (ONNX Runtime does: it owns its weights after the session is built),
the OS may have paged memory out, and other Python implementations fall back to a
``bytearray`` copy that is wiped while the ``bytes`` copy is left to the collector.
"""

from __future__ import annotations

import ctypes
import platform
import sys

__all__ = ["PlainBuffer", "wipe", "wipe_bytes"]

_CPYTHON = platform.python_implementation() == "CPython"
# Offset of the character array inside a CPython bytes object (ob_sval).
_BYTES_DATA_OFFSET = sys.getsizeof(b"") - 1


class PlainBuffer:
    """``size`` bytes of plaintext: ``view`` to write into, ``data`` to hand to a backend."""

    __slots__ = ("data", "view", "_scratch")

    def __init__(self, size: int) -> None:
        if _CPYTHON and size > 1:
            self.data = bytes(size)  # a fresh object (CPython shares only sizes 0 and 1)
            self.view = _window(self.data)
            self._scratch = None
        else:
            self._scratch = bytearray(size)
            self.view = memoryview(self._scratch)
            self.data = None

    @classmethod
    def adopt(cls, data: bytes) -> "PlainBuffer":
        """Take ownership of a ``bytes`` object nobody else holds (e.g. fresh from zlib) so it can be wiped."""
        buf = cls.__new__(cls)
        buf.data = data
        buf._scratch = None
        if _CPYTHON and len(data) > 1:
            buf.view = _window(data)
        else:
            buf.view = memoryview(b"")
        return buf

    def freeze(self) -> bytes:
        """The plaintext as ``bytes`` (no copy on CPython)."""
        if self.data is None:
            self.data = bytes(self._scratch)
        return self.data

    def wipe(self) -> None:
        """Overwrite the plaintext with zeros."""
        if self.view.nbytes:
            wipe(self.view)
        if self._scratch is not None:
            wipe(self._scratch)

    def __repr__(self) -> str:
        return f"PlainBuffer(<{self.view.nbytes} bytes>)"


def _window(data: bytes) -> memoryview:
    """A writable view of ``data``'s storage that keeps ``data`` alive as long as the view lives."""
    window_type = type("PlainWindow", (ctypes.c_char * len(data),), {})
    window = window_type.from_address(id(data) + _BYTES_DATA_OFFSET)
    window.owner = data  # the view holds the window, the window holds the bytes object
    return memoryview(window).cast("B")


def wipe(buffer: bytearray | memoryview) -> None:
    """Zero a writable buffer in place."""
    view = memoryview(buffer).cast("B")
    if view.readonly:
        raise TypeError("wipe() needs a writable buffer")
    n = view.nbytes
    if n:
        ctypes.memset((ctypes.c_char * n).from_buffer(view), 0, n)


def wipe_bytes(data: bytes) -> None:
    """Zero a ``bytes`` object nobody else holds (e.g. a piece fresh from zlib). No-op off CPython and for the
    shared 0- and 1-byte objects."""
    if _CPYTHON and len(data) > 1:
        wipe(_window(data))
