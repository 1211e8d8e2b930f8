"""Quantization-aware fine-tuning: train with int8 rounding simulated, then quantize as usual.

Weights of every Conv/Linear are fake-quantized per output channel (symmetric
int8, the scheme ``OnnxStaticConfig`` and ai-edge-quantizer use) through a
``torch.nn.utils.parametrize`` parametrization, and each layer's output is
fake-quantized per tensor (asymmetric 8-bit over a running min/max), both with
straight-through gradients. The network learns weights and activations that
survive rounding; afterwards the parametrizations are baked in (weights are
left on the int8 grid), the hooks removed, and the plain float model exported
and quantized with the usual post-training tools. Use it when PTQ misses the
accuracy budget even with layers kept in float.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .train import TrainConfig, fit

__all__ = ["QatConfig", "qat_finetune"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class QatConfig:
    """Fine-tuning schedule (usually a few epochs at a small learning rate) and the EMA of activation ranges."""

    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=3, lr=1e-4))
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum={self.momentum} must be in [0, 1)")
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train must be a TrainConfig")


def _weight_fq() -> Any:
    import torch

    class PerChannelInt8(torch.nn.Module):
        def forward(self, w: Any) -> Any:
            dims = tuple(range(1, w.dim()))
            scale = w.detach().abs().amax(dim=dims, keepdim=True).clamp(min=1e-8) / 127.0
            q = torch.clamp(torch.round(w / scale), -127, 127) * scale
            return w + (q - w).detach()  # straight-through estimator

    return PerChannelInt8


class _ActFQ:
    """Forward hook: per-tensor asymmetric 8-bit fake quantization over a running min/max."""

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, module: Any, inputs: Any, out: Any) -> Any:
        import torch

        if module.training:
            lo, hi = float(out.detach().min()), float(out.detach().max())
            m = self.momentum
            self.lo = lo if self.lo is None else m * self.lo + (1 - m) * lo
            self.hi = hi if self.hi is None else m * self.hi + (1 - m) * hi
        if self.lo is None:
            return out
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        scale = max(hi - lo, 1e-8) / 255.0
        zp = round(-lo / scale)
        q = (torch.clamp(torch.round(out / scale) + zp, 0, 255) - zp) * scale
        return out + (q - out).detach()


def qat_finetune(model: Any, x: np.ndarray, y: np.ndarray, config: QatConfig | None = None) -> Any:
    """Fine-tune ``model`` in place with simulated int8; returns it as a plain float module."""
    import torch.nn as nn
    from torch.nn.utils import parametrize

    config = config or QatConfig()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    if not layers:
        raise ConfigError("quantization-aware fine-tuning found no Conv or Linear layers to simulate")
    handles = []
    fq = _weight_fq()
    try:
        for m in layers:
            parametrize.register_parametrization(m, "weight", fq())
            handles.append(m.register_forward_hook(_ActFQ(config.momentum)))
        model = fit(model, x, y, config.train, description="quantization-aware fine-tune")
    finally:
        for h in handles:
            h.remove()
        for m in layers:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model.eval()
