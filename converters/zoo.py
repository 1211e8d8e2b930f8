"""Real data and small reference models that examples, tests and benchmarks share.

``load_digits_split`` gives scikit-learn's 8x8 handwritten digits (1,797 real
images) as a fixed train/val/test split; ``DigitsCNN`` is a small conv net
built in code whose weights dominate its exported file (so int8 really
shrinks it); ``train_digits_cnn`` trains one reproducibly on the CPU in
seconds (or on CUDA when present).

    >>> from edgeseal.converters.zoo import load_digits_split, train_digits_cnn
    >>> data = load_digits_split()
    >>> model = train_digits_cnn(data, epochs=15)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .train import TrainConfig, fit

__all__ = ["DigitsData", "load_digits_split", "digits_splits", "augment_digits", "DigitsCNN", "train_digits_cnn", "count_params"]


@dataclasses.dataclass(frozen=True)
class DigitsData:
    """Digits as float32 images ``(N, 1, 8, 8)`` scaled to [0, 1], int64 labels 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10


def load_digits_split(seed: int = 0, *, val: float = 0.2, test: float = 0.2) -> DigitsData:
    """scikit-learn's ``load_digits``, stratified into train/val/test with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test, random_state=seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val / (1 - test), random_state=seed, stratify=y_rest
    )
    return DigitsData(x_train, y_train, x_val, y_val, x_test, y_test)


def digits_splits(seed: int = 0) -> dict[str, Any]:
    """The digits split by role, as ``edgeseal build``'s ``[data] source`` takes it."""
    d = load_digits_split(seed)
    return {"train": (d.x_train, d.y_train), "eval": (d.x_val, d.y_val), "test": (d.x_test, d.y_test)}


def augment_digits(
    x: np.ndarray, y: np.ndarray, *, copies: int = 3, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The images plus ``copies`` perturbed copies (random shift by up to one pixel, Gaussian noise).

    A transfer set for distillation: on perturbed inputs the teacher's soft targets carry what the
    hard labels do not (how much a shifted 3 looks like an 8).
    """
    rng = np.random.default_rng(seed)
    xs, ys = [np.asarray(x, np.float32)], [np.asarray(y)]
    for _ in range(copies):
        shifts = rng.integers(-1, 2, size=(len(x), 2))
        moved = np.stack([np.roll(img, (int(dy), int(dx)), axis=(1, 2)) for img, (dy, dx) in zip(x, shifts)])
        xs.append((moved + rng.normal(0.0, noise, size=moved.shape)).astype(np.float32))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def _module_class() -> Any:
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        """Three 3x3 conv blocks + two linear layers over 8x8 single-channel images.

        ``channels`` and ``hidden`` set the width, so the same class builds the
        teacher (default, ~226k parameters) and small students.
        """

        def __init__(self, channels: Sequence[int] = (32, 64, 128), hidden: int = 256, num_classes: int = 10):
            super().__init__()
            c1, c2, c3 = channels
            self.features = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(c1, c2, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 8x8 -> 4x4
                nn.Conv2d(c2, c3, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 4x4 -> 2x2
            )
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(c3 * 4, hidden),
                nn.ReLU(),
                nn.Linear(hidden, num_classes),
            )

        def forward(self, x):
            return self.classifier(self.features(x))

    return DigitsCNN


def DigitsCNN(channels: Sequence[int] = (32, 64, 128), hidden: int = 256, num_classes: int = 10) -> Any:  # noqa: N802
    """Build the digits CNN (an ``nn.Module``); torch is imported on first use."""
    return _module_class()(channels=channels, hidden=hidden, num_classes=num_classes)


def count_params(model: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


def train_digits_cnn(
    data: DigitsData | None = None,
    *,
    channels: Sequence[int] = (32, 64, 128),
    hidden: int = 256,
    epochs: int = 15,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = True,
) -> Any:
    """Train a ``DigitsCNN`` on the training split; deterministic for a given seed on the CPU."""
    import torch

    data = data or load_digits_split()
    torch.manual_seed(seed)
    model = DigitsCNN(channels=channels, hidden=hidden, num_classes=data.num_classes)
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=64, seed=seed, device=device, show_progress=show_progress)
    return fit(model, data.x_train, data.y_train, cfg, description="train digits CNN")
