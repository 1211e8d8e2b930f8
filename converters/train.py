"""Plain supervised training and prediction loops, device-aware, with progress bars.

These are what pruning, distillation and the recipes fine-tune with; they are
deliberately small (Adam, cross-entropy, fixed seeds) so results repeat.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .common import Device, as_enum, progress, resolve_device, seed_everything

__all__ = ["TrainConfig", "fit", "predict_logits", "accuracy", "keep_zeros"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to (fine-)tune a classifier: Adam on cross-entropy, mini-batches, fixed seed."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    device: Device = Device.AUTO
    show_progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", as_enum(Device, self.device, "device"))
        if self.epochs < 0:
            raise ConfigError(f"epochs={self.epochs} must be >= 0")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0")


LossFn = Callable[[Any, Any, Any], Any]  # (logits, targets, inputs) -> scalar loss


def fit(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    after_step: Callable[[int, int], None] | None = None,
    description: str = "train",
) -> Any:
    """Train ``model`` in place on ``(x, y)`` and return it (in eval mode, on the CPU).

    ``loss_fn(logits, targets, inputs)`` replaces cross-entropy (distillation uses this);
    ``after_step(step, total_steps)`` runs after each optimizer step (gradual pruning uses this).
    """
    import torch
    import torch.nn.functional as F

    if len(x) != len(y):
        raise ConfigError(f"training data has {len(x)} inputs but {len(y)} labels; give one label per input")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model = model.to(device).train()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = (len(xt) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    step = 0
    with progress(description, total, enabled=config.show_progress) as bar:
        for _ in range(config.epochs):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), config.batch_size):
                idx = order[i : i + config.batch_size]
                xb, yb = xt[idx].to(device), yt[idx].to(device)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb) if loss_fn is None else loss_fn(logits, yb, xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if after_step is not None:
                    after_step(step, total)
                bar.advance()
    return model.cpu().eval()


def keep_zeros(model: Any, after_step: Callable[[int, int], None] | None = None) -> Callable[[int, int], None]:
    """An ``after_step`` hook that sets the weights that are exactly zero now (pruned) back to zero after
    every optimizer step, then calls ``after_step``: fine-tuning a pruned model keeps its sparsity.
    Masks attached with ``torch.nn.utils.prune`` need no help (their weights are not parameters)."""
    import torch

    masks = [(p, p.detach() != 0) for p in model.parameters() if p.dim() > 1 and bool((p == 0).any())]

    def hook(step: int, total: int) -> None:
        with torch.no_grad():
            for p, m in masks:
                p.mul_(m.to(p.device))
        if after_step is not None:
            after_step(step, total)

    return hook


def predict_logits(model: Any, x: np.ndarray, *, batch_size: int = 256, device: str | Device = "auto") -> np.ndarray:
    """Run ``model`` on ``x`` in eval mode without gradients; returns float32 logits on the host."""
    import torch

    dev = resolve_device(device)
    model = model.to(dev).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[i : i + batch_size], dtype=np.float32), device=dev)
            out.append(model(xb).float().cpu().numpy())
    model.cpu()
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float((np.asarray(logits).argmax(-1) == np.asarray(y)).mean())
