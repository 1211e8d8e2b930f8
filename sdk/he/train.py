"""Train and prune the square-activation MLPs that HE evaluates (torch, imported lazily).

Pruning is ``torch.nn.utils.prune`` (global L1 magnitude, unstructured) with a
short fine-tune under the mask; ``PolyMLP.simplify`` then drops the hidden units
it left dead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Square", "square_mlp", "train_square_mlp", "prune_square_mlp"]


def _torch():
    import torch

    return torch


def Square() -> Any:  # noqa: N802 - a module factory, named like the class it builds
    torch = _torch()

    class Square(torch.nn.Module):
        """``x -> x**2``: the polynomial activation CKKS evaluates with one ciphertext multiplication."""

        def forward(self, x):
            return x * x

    return Square()


def square_mlp(n_in: int, hidden: tuple[int, ...], n_out: int, *, seed: int = 0) -> Any:
    torch = _torch()
    torch.manual_seed(seed)
    layers: list[Any] = []
    sizes = (n_in, *hidden)
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = torch.nn.Linear(a, b)
        torch.nn.init.normal_(lin.weight, std=0.5 / np.sqrt(a))  # small: squares grow fast
        torch.nn.init.zeros_(lin.bias)
        layers += [lin, Square()]
    layers.append(torch.nn.Linear(sizes[-1], n_out))
    return torch.nn.Sequential(*layers)


def _fit(model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int, batch_size: int = 64) -> Any:
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
    model.eval()
    return model


def train_square_mlp(x: np.ndarray, y: np.ndarray, *, hidden: tuple[int, ...] = (32,), epochs: int = 60,
                     lr: float = 3e-3, seed: int = 0) -> Any:
    """A ``Linear -> Square -> ... -> Linear`` classifier trained with Adam (cross-entropy on the logits)."""
    model = square_mlp(x.shape[1], hidden, int(np.max(y)) + 1, seed=seed)
    return _fit(model, x, y, epochs=epochs, lr=lr, seed=seed)


def prune_square_mlp(model: Any, x: np.ndarray, y: np.ndarray, *, amount: float, finetune_epochs: int = 20,
                     lr: float = 1e-3, seed: int = 0) -> Any:
    """A pruned copy: global L1 unstructured pruning of every Linear weight to ``amount`` sparsity,
    fine-tuned with the mask held, then made permanent (zeros in the weights)."""
    import copy

    torch = _torch()
    from torch.nn.utils import prune

    pruned = copy.deepcopy(model)
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    _fit(pruned, x, y, epochs=finetune_epochs, lr=lr, seed=seed)
    for m, name in params:
        prune.remove(m, name)
    return pruned
