"""The one interface every attack runs against: an artifact that maps inputs to class scores.

An *artifact* is what ships: an fp32 torch module (the white-box reference), an
ONNX or TFLite file, or a sealed package opened by ``edgeseal.runtime.load``.
Attacks only call ``predict`` (black box); the white-box attacks additionally
need ``TorchArtifact.module`` for gradients.

``predict(x)`` takes a batch-first float array and returns the model's raw class
scores (logits) as float64, shape ``(batch, n_classes)``. Every call counts its
rows in ``queries`` so black-box budgets are reported honestly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = ["Artifact", "ArtifactBase", "TorchArtifact", "OnnxArtifact", "TFLiteArtifact", "SealedArtifact", "Reshaped"]


@runtime_checkable
class Artifact(Protocol):
    name: str
    kind: str
    size_bytes: int | None
    metadata: Mapping[str, Any]
    queries: int

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(kw_only=True)
class ArtifactBase:
    """Shared bookkeeping: name, kind (fp32/int8/pruned/...), size, metadata and a query counter."""

    name: str
    kind: str
    size_bytes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    batch_limit: int = 4096

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if x.ndim < 2:
            raise ConfigError(f"{self.name}: predict needs a batch-first array, got shape {x.shape}")
        self.queries += x.shape[0]
        parts = [self._predict(x[i : i + self.batch_limit]) for i in range(0, x.shape[0], self.batch_limit)]
        out = np.concatenate(parts, axis=0).astype(np.float64)
        return out.reshape(x.shape[0], -1)

    def _predict(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(kw_only=True)
class TorchArtifact(ArtifactBase):
    """An fp32 (or any) torch module in eval mode; the white-box reference."""

    module: Any = None

    def __post_init__(self) -> None:
        if self.module is None:
            raise ConfigError(f"{self.name}: TorchArtifact needs module=")
        self.module.eval()

    def _predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(x)).double().numpy()


@dataclass(kw_only=True)
class OnnxArtifact(ArtifactBase):
    """ONNX bytes run by the runtime's onnxruntime backend on the CPU (``converters.infer.OnnxRunner``;
    one thread: the attacks are many small calls)."""

    model: bytes = b""
    threads: int = 1

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError(f"{self.name}: OnnxArtifact needs model= (the ONNX bytes)")
        self._runner = _runner(self.name, "onnx", self.model, self.threads)
        if self.size_bytes is None:
            self.size_bytes = len(self.model)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._runner.run_all(x)


@dataclass(kw_only=True)
class TFLiteArtifact(ArtifactBase):
    """TFLite flatbuffer run by the runtime's LiteRT backend (``converters.infer.TfliteRunner``): the batch
    is resized per call where the model allows it, else run in the model's own batch; a full-integer
    model takes and returns float, quantized with its own scales (``edgeseal.runtime.quantio``)."""

    model: bytes = b""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError(f"{self.name}: TFLiteArtifact needs model= (the .tflite bytes)")
        self._runner = _runner(self.name, "tflite", self.model, 1)
        if self.size_bytes is None:
            self.size_bytes = len(self.model)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._runner.run_all(x)


def _runner(name: str, fmt: str, model: bytes, threads: int) -> Any:
    """The host-side runner over the runtime's backend session (the one way edgeseal runs a model)."""
    from edgeseal.converters.infer import OnnxRunner, TfliteRunner

    try:
        return (OnnxRunner if fmt == "onnx" else TfliteRunner)(bytes(model), threads=threads)
    except UnsupportedError as exc:
        raise UnsupportedError(f"{name}: {exc}", reason=exc.reason) from None


@dataclass(kw_only=True)
class SealedArtifact(ArtifactBase):
    """A sealed package opened with ``edgeseal.runtime.load``: the audit runs on what ships.

    ``load_options`` go to ``load`` unchanged (``key=``, ``trusted=``, ``allow_unsigned=`` ...).
    """

    package: bytes | str | Path = b""
    load_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from edgeseal import runtime

        if not hasattr(runtime, "load"):
            raise UnsupportedError(
                "this build of edgeseal.runtime has no load(); sealed artifacts need the runtime",
                reason="edgeseal.runtime.load missing",
            )
        self._model = runtime.load(self.package, **dict(self.load_options))
        self._input = self._model.inputs[0].name
        self._output = self._model.outputs[0].name
        if self.size_bytes is None:
            self.size_bytes = (
                len(self.package) if isinstance(self.package, bytes) else Path(self.package).stat().st_size
            )
        manifest = getattr(self._model, "manifest", None)
        if manifest is not None:
            self.metadata.setdefault("manifest_model_version", getattr(manifest, "model_version", None))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._model.run({self._input: x})[self._output]


@dataclass(kw_only=True)
class Reshaped(ArtifactBase):
    """An artifact whose model takes samples of ``shape`` (images, sequences), seen as flat feature rows.

    The attacks that perturb features one by one (random search, disagreement search, occlusion,
    LIME/SHAP) work on rows ``(N, prod(shape))``; ``predict`` reshapes them to ``(N, *shape)`` for
    ``inner``. Name, kind, size and metadata are the inner artifact's; queries are counted here.
    """

    inner: Any = None
    shape: tuple[int, ...] = ()

    @classmethod
    def wrap(cls, inner: ArtifactBase, shape: tuple[int, ...]) -> "Reshaped":
        return cls(name=inner.name, kind=inner.kind, size_bytes=inner.size_bytes, metadata=inner.metadata,
                   inner=inner, shape=tuple(shape))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict(x.reshape(len(x), *self.shape))
