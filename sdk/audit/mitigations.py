"""Mitigations the audit measures, in the audit's own terms: DP-SGD from scratch with Opacus,
and adversarial (PGD) fine-tuning that keeps pruning masks (pass it as the ``fine_tune`` step
of ``edgeseal.converters.prune.prune_unstructured``).

Both are thin calls into ``edgeseal.converters.dp`` and ``edgeseal.converters.adversarial``,
which the compress recipe's ``[dp]`` and ``[adversarial]`` stages use too.
"""

from __future__ import annotations

import numpy as np

from edgeseal.converters.adversarial import AdversarialConfig
from edgeseal.converters.adversarial import adversarial_finetune as _adversarial_finetune
from edgeseal.converters.dp import DpConfig, DpResult, dp_finetune
from edgeseal.converters.train import TrainConfig
from edgeseal.runtime.errors import ConfigError

__all__ = ["DpResult", "dp_sgd_train", "adversarial_finetune"]


def dp_sgd_train(model, x: np.ndarray, y: np.ndarray, *, epsilon: float, delta: float, epochs: int,
                 max_grad_norm: float, lr: float, batch_size: int, seed: int):
    """Train ``model`` with DP-SGD to an (epsilon, delta) budget (``edgeseal.converters.dp``). The guarantee
    covers every use of ``(x, y)`` only when ``model`` starts from a data-independent initialisation, which is
    how the audit calls it. Returns the model and the ``DpResult``."""
    if not 0 < delta < 1 or epsilon <= 0:
        raise ConfigError(f"DP-SGD needs epsilon > 0 and 0 < delta < 1, got epsilon={epsilon}, delta={delta}")
    cfg = DpConfig(epsilon=epsilon, delta=delta, max_grad_norm=max_grad_norm, epochs=epochs, lr=lr,
                   batch_size=batch_size, seed=seed, device="cpu", show_progress=False)
    return dp_finetune(model, x, y, cfg, from_scratch=True)


def adversarial_finetune(model, x: np.ndarray, y: np.ndarray, *, eps: float, epochs: int, batch_size: int,
                         lr: float, steps: int = 7, lo=None, hi=None, seed: int = 0):
    """PGD adversarial training (``edgeseal.converters.adversarial``): PGD-``steps`` examples at ``eps``
    weighted 50/50 with the clean batch (keeps clean accuracy). Pruning masks, if attached, stay."""
    cfg = AdversarialConfig(epsilon=eps, steps=steps, step_ratio=0.25, mix=0.5, lo=lo, hi=hi,
                            train=TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device="cpu",
                                              show_progress=False))
    return _adversarial_finetune(model, x, y, cfg)
