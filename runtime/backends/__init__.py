"""Inference backends, one module each with the same shape.

Each backend module defines ``NAME``, ``FORMAT`` (the content format it runs),
``problem() -> str | None`` (why it cannot run here, or None when it imports
*and works*) and ``Session(model: bytes, threads: int | None)`` with ``inputs``,
``outputs`` (tuples of TensorSpec; overridable initializers last), ``run(feeds) -> dict`` (the values
exactly as the backend returns them) and ``close()``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UnsupportedError

__all__ = ["BACKENDS", "select", "describe"]

# Preference order per content format.
BACKENDS: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime",),
    "onnx+codebook": ("onnxruntime_codebook",),  # codebook-encoded weights (docs/format.md §11), decoded at load
    "tflite": ("litert",),
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def select(content_format: str, backend: str = "auto") -> ModuleType:
    """The backend module that runs ``content_format`` here; UnsupportedError says why none does."""
    names = BACKENDS.get(content_format)
    if names is None:
        raise UnsupportedError(
            f"no backend runs content format {content_format!r}; supported: {sorted(BACKENDS)}",
            reason="unknown format",
        )
    if backend != "auto":  # a backend is asked for by its NAME (several modules may share one, e.g. onnxruntime)
        names = tuple(n for n in names if backend in (n, _module(n).NAME))
        if not names:
            offered = sorted({_module(n).NAME for n in BACKENDS[content_format]})
            raise UnsupportedError(f"backend {backend!r} does not run {content_format!r} models; use one of {offered}")
    problems = []
    for name in names:
        module = _module(name)
        problem = module.problem()
        if problem is None:
            return module
        problems.append(f"{name}: {problem}")
    extra = "onnx" if content_format.startswith("onnx") else "tflite"
    raise UnsupportedError(
        f"cannot run a {content_format} model here ({'; '.join(problems)}); "
        f"install the backend with: pip install 'edgeseal[{extra}]'",
        reason="backend missing",
    )


def describe() -> dict[str, str]:
    """Each backend and whether it works here (for `edgeseal doctor`-style output)."""
    out = {}
    for names in BACKENDS.values():
        for name in names:
            module = _module(name)
            problem = module.problem()
            out[module.NAME] = "ok" if problem is None else problem
    return out
