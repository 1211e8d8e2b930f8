"""Small models the audit trains itself: the (deliberately overfitted) target and the
attacker's reference models. Imports torch; never imported by the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseal.runtime.errors import ConfigError

__all__ = ["TrainConfig", "make_mlp", "train_classifier", "accuracy"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a classifier is trained. Defaults overfit on purpose: no weight decay, many epochs."""

    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 150
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"hidden layer widths must be positive, got {self.hidden}")
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ConfigError("epochs and batch_size must be positive")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("lr must be > 0 and weight_decay >= 0")

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "weight_decay": self.weight_decay, "optimizer": "adam"}


def make_mlp(n_in: int, n_out: int, hidden: tuple[int, ...], *, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def train_classifier(model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, *, seed: int,
                     soft_targets: np.ndarray | None = None, temperature: float = 1.0):
    """Adam on cross-entropy (or KL to ``soft_targets`` logits for distillation). Returns the model."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    st = None if soft_targets is None else torch.from_numpy(np.asarray(soft_targets, np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    n = xt.shape[0]
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            out = model(xt[idx])
            if st is None:
                loss = F.cross_entropy(out, yt[idx])
            else:
                t = temperature
                loss = F.kl_div(F.log_softmax(out / t, 1), F.softmax(st[idx] / t, 1), reduction="batchmean") * t * t
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == y))
