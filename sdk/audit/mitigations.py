"""Mitigations the audit measures: DP-SGD training with Opacus, and adversarial (PGD)
fine-tuning that keeps pruning masks (pass it as the ``fine_tune`` step of
``edgeseal.converters.prune.prune_unstructured``).

Each returns the trained module (DP-SGD also the facts the report needs: epsilon, delta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = ["DpResult", "dp_sgd_train", "adversarial_finetune"]


@dataclass(frozen=True, kw_only=True)
class DpResult:
    epsilon: float  # spent, from Opacus' RDP accountant
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    epochs: int
    sample_rate: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def dp_sgd_train(model, x: np.ndarray, y: np.ndarray, *, epsilon: float, delta: float, epochs: int,
                 max_grad_norm: float, lr: float, batch_size: int, seed: int):
    """Train ``model`` with DP-SGD (per-example clipping + Gaussian noise, Poisson sampling) to an
    (epsilon, delta) budget. The guarantee covers every use of ``(x, y)`` only when ``model``
    starts from a data-independent initialisation, which is how the audit calls it."""
    try:
        from opacus import PrivacyEngine
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UnsupportedError("DP-SGD needs Opacus: pip install 'edgeseal[compress]'", reason=str(e))
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if not 0 < delta < 1 or epsilon <= 0:
        raise ConfigError(f"DP-SGD needs epsilon > 0 and 0 < delta < 1, got epsilon={epsilon}, delta={delta}")
    torch.manual_seed(seed)
    ds = TensorDataset(torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64)))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about the non-secure RNG, expected for an audit
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        pmodel, popt, ploader = engine.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=epsilon, target_delta=delta,
            epochs=epochs, max_grad_norm=max_grad_norm)
        for _ in range(epochs):
            for xb, yb in ploader:
                if len(xb) == 0:
                    continue
                popt.zero_grad()
                torch.nn.functional.cross_entropy(pmodel(xb), yb).backward()
                popt.step()
        spent = float(engine.get_epsilon(delta))
    model.eval()
    return model, DpResult(epsilon=spent, delta=delta, target_epsilon=epsilon,
                           noise_multiplier=float(popt.noise_multiplier), max_grad_norm=max_grad_norm,
                           epochs=epochs, sample_rate=float(1.0 / len(ploader)))


def adversarial_finetune(model, x: np.ndarray, y: np.ndarray, *, eps: float, epochs: int, batch_size: int,
                         lr: float, steps: int = 7, lo=None, hi=None, seed: int = 0):
    """PGD adversarial training (Madry et al.): each batch is replaced by PGD examples at ``eps``
    mixed 50/50 with the clean batch (keeps clean accuracy). Pruning masks, if attached, stay."""
    import torch
    import torch.nn.functional as F

    from .robustness import pgd

    g = torch.Generator().manual_seed(seed)
    xt, yt = np.asarray(x, np.float32), np.asarray(y, np.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(xt)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g).numpy()
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xa = pgd(model, xt[idx], yt[idx], eps, steps=steps, step=eps / 4, lo=lo, hi=hi, seed=seed + epoch + i)
            model.train()
            xb = torch.from_numpy(np.concatenate([xt[idx], xa]))
            yb = torch.from_numpy(np.concatenate([yt[idx], yt[idx]]))
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
