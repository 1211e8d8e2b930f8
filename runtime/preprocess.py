"""Image preprocessing a device applies before a classifier: decode, resize, crop, normalise.

Torch-free: numpy, plus Pillow to decode and resize image files (``pip install pillow``; the
error says so when it is missing). The recipe travels in the sealed package's manifest
(``metadata["preprocess"]``, a JSON object) so an app can feed a photo to a sealed model
without knowing how it was trained:

    >>> pre = ImagePreprocess.from_manifest(model.manifest)
    >>> x = pre.load("photo.jpg")                 # float32 (1, 3, 224, 224) for an NCHW model
    >>> logits = model.run(x)["output"]

The steps are the classic ImageNet evaluation transform: resize the shorter side to
``resize`` (bilinear), centre-crop ``size``, scale to [0, 1], subtract ``mean`` and divide by
``std`` per channel, lay out as NCHW or NHWC.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError, UnsupportedError
from .quantio import FloatIO

__all__ = ["open_image", "ImagePreprocess", "METADATA_KEY", "LABELS_KEY", "labels_metadata", "manifest_labels", "top_k", "classify"]

#: the manifest metadata key that holds the preprocessing JSON
METADATA_KEY = "preprocess"
#: the manifest metadata key that holds the class names (a JSON list, index = class)
LABELS_KEY = "labels"

_LAYOUTS = ("NCHW", "NHWC")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImagePreprocess:
    """How a photo becomes the model's input tensor.

    ``size`` is (height, width) of the input; ``resize`` the shorter side before the centre crop
    (0: resize straight to ``size``, no crop); ``mean``/``std`` per RGB channel on the [0, 1]
    scale; ``layout`` "NCHW" (PyTorch, ONNX) or "NHWC" (TFLite).
    """

    size: tuple[int, int] = (224, 224)
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        size = tuple(int(s) for s in self.size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"size={self.size!r} must be (height, width), both >= 1")
        object.__setattr__(self, "size", size)
        if int(self.resize) < 0:
            raise ConfigError(f"resize={self.resize} must be >= 0 (0 = resize straight to size)")
        if self.resize and int(self.resize) < min(size):
            raise ConfigError(f"resize={self.resize} is smaller than the crop {size}; use >= {min(size)} or 0")
        object.__setattr__(self, "resize", int(self.resize))
        for name in ("mean", "std"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 3:
                raise ConfigError(f"{name}={getattr(self, name)!r} needs one value per RGB channel (3)")
            object.__setattr__(self, name, v)
        if min(self.std) <= 0:
            raise ConfigError(f"std={self.std} must be > 0 for every channel")
        layout = str(self.layout).upper()
        if layout not in _LAYOUTS:
            raise ConfigError(f"layout={self.layout!r} must be one of {', '.join(_LAYOUTS)}")
        object.__setattr__(self, "layout", layout)

    # --- manifest form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"type": "image", "size": list(self.size), "resize": self.resize, "mean": list(self.mean),
                "std": list(self.std), "layout": self.layout, "channels": "RGB", "scale": "1/255"}

    def to_metadata(self) -> dict[str, str]:
        """The manifest metadata entry (``seal(..., metadata=pre.to_metadata())``)."""
        return {METADATA_KEY: json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ImagePreprocess":
        if d.get("type", "image") != "image":
            raise UnsupportedError(f"preprocessing of type {d.get('type')!r} is not an image recipe",
                                   reason="not an image model")
        try:
            return cls(size=tuple(d["size"]), resize=int(d.get("resize", 0)), mean=tuple(d["mean"]),
                       std=tuple(d["std"]), layout=str(d.get("layout", "NCHW")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the preprocessing recipe {dict(d)!r} is malformed ({exc}); re-seal the model "
                              "with ImagePreprocess(...).to_metadata()") from None

    @classmethod
    def from_manifest(cls, manifest: Any) -> "ImagePreprocess":
        """The recipe a sealed model carries; ConfigError naming the model when it has none."""
        text = (getattr(manifest, "metadata", None) or {}).get(METADATA_KEY)
        if not text:
            name = getattr(manifest, "name", "the model")
            raise ConfigError(f"model {name!r} carries no image preprocessing in its manifest; seal it with "
                              "metadata=ImagePreprocess(...).to_metadata(), or feed arrays with --input")
        try:
            d = json.loads(text)
        except ValueError:
            raise ConfigError(f"metadata[{METADATA_KEY!r}] is not JSON: {text[:80]!r}") from None
        return cls.from_dict(d)

    # --- the transform ---------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Decode an image file and return the model input, a float32 batch of one."""
        image = _open_image(path)
        return self.apply(image)[None]

    def apply(self, image: Any) -> np.ndarray:
        """A PIL image (any mode) or an (H, W, 3) uint8 array -> one float32 input (no batch axis)."""
        img = _as_pil(image).convert("RGB")
        h, w = self.size
        if self.resize:
            s = self.resize / min(img.size)
            new = (max(w, round(img.size[0] * s)), max(h, round(img.size[1] * s)))
            img = img.resize(new, _bilinear())
            left, top = (new[0] - w) // 2, (new[1] - h) // 2
            img = img.crop((left, top, left + w, top + h))
        else:
            img = img.resize((w, h), _bilinear())
        return self.normalize(np.asarray(img, dtype=np.uint8))

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 (or [0, 255] float) pixels -> normalised float32 in this layout."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ConfigError(f"expected (height, width, 3) RGB pixels, got shape {rgb.shape}")
        x = (rgb.astype(np.float32) / 255.0 - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1) if self.layout == "NCHW" else x, dtype=np.float32)


def top_k(logits: np.ndarray, k: int = 5, labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``k`` highest classes of one logit vector with softmax probabilities (and names if given)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    p = np.exp(z - z.max())
    p /= p.sum()
    idx = np.argsort(-z, kind="stable")[:k]
    out = []
    for i in idx:
        row: dict[str, Any] = {"class": int(i), "probability": float(p[i])}
        if labels is not None and i < len(labels):
            row["label"] = labels[i]
        out.append(row)
    return out


def labels_metadata(labels: Sequence[str]) -> dict[str, str]:
    """The manifest metadata entry for class names (``seal(..., metadata={**pre.to_metadata(), **labels_metadata(names)})``)."""
    names = [str(n) for n in labels]
    if not names:
        raise ConfigError("labels is empty; give one name per output class")
    return {LABELS_KEY: json.dumps(names, separators=(",", ":"), ensure_ascii=False)}


def manifest_labels(manifest: Any) -> list[str] | None:
    """The class names a sealed model carries, or None when it carries none."""
    text = (getattr(manifest, "metadata", None) or {}).get(LABELS_KEY)
    if not text:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        raise ConfigError(f"metadata[{LABELS_KEY!r}] is not a JSON list of names; re-seal with labels_metadata()") from None
    if not isinstance(names, list):
        raise ConfigError(f"metadata[{LABELS_KEY!r}] must be a JSON list of names, got {type(names).__name__}")
    return [str(n) for n in names]


def classify(model: Any, image: Any, *, k: int = 5) -> list[dict[str, Any]]:
    """Top-``k`` classes of one photo with a sealed image classifier (a ``SealedModel``).

    ``image`` is a file path, a PIL image or (H, W, 3) uint8 pixels; the model's manifest supplies
    the preprocessing (and the class names, when it carries them). The first output is taken as
    the logits.
    """
    pre = ImagePreprocess.from_manifest(model.manifest)
    if isinstance(image, (str, os.PathLike)):
        x = pre.load(image)
    else:
        x = pre.apply(image)[None]
    runner = FloatIO(model)  # a full-integer model gets its input quantized and its logits dequantized
    spec = runner.inputs[0]
    outputs = runner.run({spec.name: x})
    logits = next(iter(outputs.values()))
    return top_k(np.asarray(logits)[0], k, manifest_labels(model.manifest))


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise UnsupportedError("decoding image files needs Pillow; install it with `pip install pillow` "
                               "(or pass preprocessed arrays with --input)", reason="Pillow not installed") from None
    return Image


def _bilinear() -> Any:
    image = _pil()
    return getattr(image, "Resampling", image).BILINEAR


def open_image(source: str | os.PathLike[str] | bytes) -> Any:
    """Decode an image file (a path) or encoded image bytes (JPEG, PNG, ...) into a PIL image."""
    import io

    image = _pil()
    what = "the image bytes" if isinstance(source, (bytes, bytearray)) else repr(os.fspath(source))
    try:
        with image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise ConfigError(f"image file {what} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot decode {what} as an image: {exc}") from None


_open_image = open_image


def _as_pil(image: Any) -> Any:
    pil = _pil()
    if isinstance(image, pil.Image):
        return image
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise ConfigError(f"expected a PIL image or (H, W, 3) uint8 pixels, got {arr.dtype}{list(arr.shape)}")
    return pil.fromarray(arr[..., :3])
