"""ONNX Runtime for content format ``onnx+codebook`` (docs/format.md §11): the same backend, with the payload's
codebook records decoded in memory into the buffer ORT reads the weights from (``edgeseal.runtime.codebook``)."""

from __future__ import annotations

from . import onnxruntime as _ort

NAME = _ort.NAME
FORMAT = "onnx+codebook"
problem = _ort.problem


class Session(_ort.Session):
    """An ORT session over an ``onnx+codebook`` payload; anything else is ``InvalidPackage``."""

    codebook = True
