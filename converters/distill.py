"""Knowledge distillation: a student learns from a teacher's softened outputs and the true labels.

loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)

(Hinton et al. 2015; the T^2 factor keeps soft-target gradients on the same
scale as the hard-label term.) Usable on its own (teacher -> smaller student)
and to recover accuracy after pruning or quantization (the unpruned model as
teacher).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .common import resolve_device
from .train import TrainConfig, fit

__all__ = ["DistillConfig", "distill", "distillation_loss", "ensemble"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Temperature and soft/hard mix of the distillation loss; ``train`` sets epochs, lr, seed, device."""

    temperature: float = 4.0
    alpha: float = 0.7
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature={self.temperature} must be > 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha} must be in [0, 1] (weight of the soft-target term)")
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train must be a TrainConfig")


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, *, temperature: float, alpha: float) -> Any:
    """Soft-target KL (scaled by T^2) mixed with hard-label cross-entropy."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1), reduction="batchmean", log_target=True
    ) * (t * t)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def ensemble(models: Any) -> Any:
    """One teacher from several: a module that averages their logits (eval mode).

    Independently trained teachers disagree where an input is ambiguous, so their average carries
    soft targets that a single over-confident teacher does not.
    """
    import torch

    models = list(models)
    if not models:
        raise ConfigError("ensemble needs at least one model")

    class Ensemble(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(models)

        def forward(self, x: Any) -> Any:
            return torch.stack([m(x) for m in self.members]).mean(0)

    return Ensemble().eval()


def distill(teacher: Any, student: Any, x: np.ndarray, y: np.ndarray, config: DistillConfig | None = None) -> Any:
    """Train ``student`` on ``(x, y)`` with ``teacher``'s soft targets; returns the student (eval mode, CPU)."""
    import torch

    config = config or DistillConfig()
    device = resolve_device(config.train.device)
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(logits: Any, labels: Any, inputs: Any) -> Any:
        with torch.no_grad():
            t_logits = teacher(inputs)
        return distillation_loss(logits, t_logits, labels, temperature=config.temperature, alpha=config.alpha)

    try:
        return fit(student, x, y, config.train, loss_fn=loss_fn, description="distill")
    finally:
        teacher.cpu()
        for p in teacher.parameters():
            p.requires_grad_(True)
