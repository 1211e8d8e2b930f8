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

__all__ = ["PlainBuffer", "read_file", "wipe", "wipe_bytes"]

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
            _advise_huge_pages(id(self.data) + _BYTES_DATA_OFFSET, size)
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


_HUGE = 2**21
_MADV_HUGEPAGE = 14  # Linux
_madvise = None
if sys.platform == "linux" and _CPYTHON:
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _madvise = _libc.madvise
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        _madvise = None


def _advise_huge_pages(address: int, size: int) -> None:
    """Ask Linux to back the 2 MiB-aligned interior of a fresh, untouched buffer with huge pages.

    A large ``bytes(size)`` is a fresh zero mapping; its first write (the decryption) takes one
    page fault per 4 KiB page, which on a virtual machine costs as much as decrypting it
    (about 50 ms for 91 MB measured in bench/seal_load.py). With transparent huge pages in
    ``madvise`` mode (a common default) this makes it one fault per 2 MiB. Best effort: any
    failure leaves ordinary pages.
    """
    if _madvise is None or size < 2 * _HUGE:
        return
    start = -(-address // _HUGE) * _HUGE
    end = (address + size) // _HUGE * _HUGE
    if end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)


def read_file(file, size: int, limit: int) -> bytes:
    """Binary ``file`` (expected ``size`` bytes, e.g. from fstat) as one ``bytes`` object, at most ``limit`` + 1 bytes.

    Like ``file.read(limit + 1)``, but read straight into a fresh buffer that asked for huge
    pages, which on a virtual machine makes reading a 91 MB package about 3x faster
    (bench/seal_load.py's first-touch figures): ``read()`` pays one page fault per 4 KiB.
    Not for secrets: this is the ciphertext, nothing wipes it.
    """
    size = min(size, limit + 1)
    if not _CPYTHON or size <= 1:
        return file.read(limit + 1)
    buf = PlainBuffer(size)
    view, got = buf.view, 0
    while got < size:
        n = file.readinto(view[got:])
        if not n:
            break
        got += n
    rest = file.read(limit + 1 - got)
    if got == size and not rest:
        return buf.data
    return bytes(view[:got]) + rest  # the file changed size while it was read


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
