"""Adversarial examples and the training that resists them: FGSM/PGD, PGD adversarial
fine-tuning, and defensive pruning.

The one home of these for the whole project: the compress recipe's ``[adversarial]`` and
``[defensive_prune]`` stages and the audit (``edgeseal.audit.robustness``,
``edgeseal.audit.mitigations``) all call what is here.

All attacks are L-infinity bounded; ``lo``/``hi`` clip to the valid input range (pixels)
when the data has one. Inputs keep their shape (images stay ``(N, C, H, W)``).

* ``pgd`` — Projected Gradient Descent on cross-entropy (Madry et al. 2018), random start.
* ``adversarial_finetune`` — each batch's loss mixes clean and PGD examples (``mix`` of the
  weight on the adversarial half); pruned (zero) weights stay zero, attached masks stay.
* ``defensive_prune`` — the channels whose activations the PGD examples move most (relative
  to their clean activations) are masked to zero, then the model is fine-tuned with the masks
  attached: the channels an attack exploits are removed, not only out-trained. Masks zero
  whole output channels but the exported file keeps their (zero) weights: it is a robustness
  measure, not a size one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .train import TrainConfig, fit, keep_zeros

__all__ = ["fgsm", "pgd", "AdversarialConfig", "adversarial_finetune", "DefensivePruneConfig", "DefensivePlan",
           "defensive_prune", "robust_accuracy"]


def _clip(x: Any, x0: Any, eps: float, lo: float | None, hi: float | None) -> Any:
    import torch

    x = torch.max(torch.min(x, x0 + eps), x0 - eps)
    if lo is not None:
        x = x.clamp(lo, hi)
    return x


def _pgd_tensor(module: Any, x0: Any, y: Any, eps: float, *, steps: int, step: float, lo: float | None,
                hi: float | None, random_start: bool, generator: Any) -> Any:
    """PGD on tensors already on the module's device; returns a detached adversarial batch."""
    import torch
    import torch.nn.functional as F

    if eps == 0:
        return x0.detach().clone()
    xa = x0.detach().clone()
    if random_start:
        noise = torch.rand(xa.shape, generator=generator).to(xa.device)
        xa = _clip(xa + (noise * 2 - 1) * eps, x0, eps, lo, hi)
    was_training = module.training
    module.eval()
    try:
        for _ in range(steps):
            xa.requires_grad_(True)
            loss = F.cross_entropy(module(xa), y)
            (grad,) = torch.autograd.grad(loss, xa)
            xa = _clip(xa.detach() + step * grad.sign(), x0, eps, lo, hi)
    finally:
        module.train(was_training)
    return xa.detach()


def pgd(module: Any, x: np.ndarray, y: np.ndarray, eps: float, *, steps: int, step: float, lo: float | None = None,
        hi: float | None = None, random_start: bool = True, seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """PGD examples for ``(x, y)`` against a torch module, L-infinity ball of radius ``eps``."""
    import torch

    if eps == 0:
        return np.asarray(x, np.float32).copy()
    if eps < 0 or steps < 1 or step <= 0:
        raise ConfigError(f"PGD needs eps >= 0, steps >= 1 and step > 0; got eps={eps}, steps={steps}, step={step}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    g = torch.Generator().manual_seed(seed)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    out = []
    for i in range(0, len(x), batch_size):
        x0 = torch.from_numpy(x[i : i + batch_size]).to(device)
        yb = torch.from_numpy(y[i : i + batch_size]).to(device)
        out.append(_pgd_tensor(module, x0, yb, eps, steps=steps, step=step, lo=lo, hi=hi,
                               random_start=random_start, generator=g).cpu().numpy())
    return np.concatenate(out) if out else x.copy()


def fgsm(module: Any, x: np.ndarray, y: np.ndarray, eps: float, *, lo: float | None = None,
         hi: float | None = None) -> np.ndarray:
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one PGD step of size ``eps``, no random start."""
    if eps == 0:
        return np.asarray(x, np.float32).copy()
    return pgd(module, x, y, eps, steps=1, step=eps, lo=lo, hi=hi, random_start=False)


def robust_accuracy(predict: Callable[[np.ndarray], np.ndarray], x_adv: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x_adv`` that ``predict`` (inputs -> class scores) still labels correctly."""
    return float(np.mean(np.argmax(np.asarray(predict(x_adv)), axis=-1) == np.asarray(y)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdversarialConfig:
    """PGD adversarial fine-tuning: ``steps`` PGD steps of ``step_ratio * epsilon`` per batch;
    the loss is ``(1 - mix) * CE(clean) + mix * CE(PGD)``."""

    epsilon: float
    steps: int = 7
    step_ratio: float = 0.25
    mix: float = 0.5
    lo: float | None = None
    hi: float | None = None
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"adversarial epsilon={self.epsilon} must be > 0 (L-inf radius in input units)")
        if self.steps < 1 or not self.step_ratio > 0:
            raise ConfigError(f"adversarial steps={self.steps} must be >= 1 and step_ratio={self.step_ratio} > 0")
        if not 0 < self.mix <= 1:
            raise ConfigError(f"adversarial mix={self.mix} must be in (0, 1] (weight of the PGD examples)")
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and not self.lo < self.hi):
            raise ConfigError("give both lo and hi (lo < hi) to clip adversarial inputs, or neither")


def adversarial_finetune(model: Any, x: np.ndarray, y: np.ndarray, config: AdversarialConfig, *,
                         after_step: Callable[[int, int], None] | None = None) -> Any:
    """PGD adversarial training (Madry et al. 2018) of ``model`` on ``(x, y)``; returns it (eval mode, CPU)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(config.train.seed + 7919)
    c = config

    def loss_fn(logits: Any, labels: Any, inputs: Any) -> Any:
        xa = _pgd_tensor(model, inputs, labels, c.epsilon, steps=c.steps, step=c.step_ratio * c.epsilon, lo=c.lo,
                         hi=c.hi, random_start=True, generator=g)
        adv = F.cross_entropy(model(xa), labels)
        return adv if c.mix == 1 else (1 - c.mix) * F.cross_entropy(logits, labels) + c.mix * adv

    return fit(model, x, y, c.train, loss_fn=loss_fn, after_step=keep_zeros(model, after_step),
               description="adversarial fine-tune")


# --------------------------------------------------------------------------- defensive pruning


@dataclasses.dataclass(frozen=True, kw_only=True)
class DefensivePruneConfig:
    """Mask ``ratio`` of the output channels of every Conv/Linear layer but the last, chosen by how far
    PGD examples at ``epsilon`` move them: ``mean |a(x_adv) - a(x)| / (mean |a(x)| + 1e-6)`` over
    ``samples`` training inputs."""

    ratio: float = 0.2
    epsilon: float = 0.1
    steps: int = 10
    step_ratio: float = 0.25
    samples: int = 256
    lo: float | None = None
    hi: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.ratio < 1:
            raise ConfigError(f"defensive_prune ratio={self.ratio} must be in (0, 1)")
        if not self.epsilon > 0 or self.steps < 1 or not self.step_ratio > 0 or self.samples < 1:
            raise ConfigError("defensive_prune needs epsilon > 0, steps >= 1, step_ratio > 0 and samples >= 1")
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and not self.lo < self.hi):
            raise ConfigError("give both lo and hi (lo < hi) to clip adversarial inputs, or neither")


@dataclasses.dataclass(frozen=True)
class DefensivePlan:
    """Which channels defensive pruning masked, layer by layer, and the score that chose them."""

    layers: tuple[tuple[str, int, int], ...]  # (layer, channels masked, channels)
    epsilon: float
    mean_shift_masked: float  # mean score of the masked channels
    mean_shift_kept: float

    @property
    def channels_masked(self) -> int:
        return sum(m for _, m, _ in self.layers)

    def summary(self) -> str:
        total = sum(n for _, _, n in self.layers)
        return (f"defensive pruning masked {self.channels_masked} of {total} channels in {len(self.layers)} layers "
                f"(adversarial shift at eps {self.epsilon:g}: masked {self.mean_shift_masked:.3f} vs kept "
                f"{self.mean_shift_kept:.3f})")

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [{"layer": n, "masked": m, "channels": c} for n, m, c in self.layers],
                "epsilon": self.epsilon, "channels_masked": self.channels_masked,
                "mean_shift_masked": self.mean_shift_masked, "mean_shift_kept": self.mean_shift_kept}


def _prunable_layers(model: Any) -> list[tuple[str, Any]]:
    import torch

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]
    return layers[:-1]  # the classifier head keeps every class


def defensive_prune(model: Any, x: np.ndarray, y: np.ndarray, config: DefensivePruneConfig, *,
                    fine_tune: Callable[[Any], Any] | None = None) -> tuple[Any, DefensivePlan]:
    """Mask the channels adversarial examples exploit, fine-tune with the masks attached, bake them in.

    ``fine_tune(model)`` trains the masked model (plain or adversarial fine-tuning); returns
    ``(model, plan)`` with the zeros in the weights.
    """
    import torch
    import torch.nn.utils.prune as tprune

    layers = _prunable_layers(model)
    if not layers:
        raise UnsupportedError("defensive pruning masks Conv/Linear output channels; this model has no such layer "
                               "before its classifier head", reason="no prunable layers")
    c = config
    rng = np.random.default_rng(c.seed)
    idx = rng.permutation(len(x))[: c.samples]
    xs, ys = np.asarray(x, np.float32)[idx], np.asarray(y, np.int64)[idx]
    model = model.cpu().eval()
    x_adv = pgd(model, xs, ys, c.epsilon, steps=c.steps, step=c.step_ratio * c.epsilon, lo=c.lo, hi=c.hi, seed=c.seed)
    acts: dict[str, list[Any]] = {n: [] for n, _ in layers}
    hooks = [m.register_forward_hook(lambda _m, _i, out, _n=n: acts[_n].append(out.detach())) for n, m in layers]
    try:
        with torch.no_grad():
            model(torch.from_numpy(xs))
            model(torch.from_numpy(x_adv))
    finally:
        for h in hooks:
            h.remove()
    plan_layers, masked_scores, kept_scores = [], [], []
    for name, module in layers:
        clean, adv = acts[name]
        dims = [d for d in range(clean.dim()) if d != 1]  # everything but the channel axis
        shift = (adv - clean).abs().mean(dim=dims) / (clean.abs().mean(dim=dims) + 1e-6)
        n_out = int(shift.numel())
        k = int(round(c.ratio * n_out))
        if k == 0 or k >= n_out:
            continue
        order = torch.argsort(shift, descending=True)
        keep = torch.ones(n_out, dtype=torch.bool)
        keep[order[:k]] = False
        w_mask = keep.view(-1, *([1] * (module.weight.dim() - 1))).expand_as(module.weight).float()
        tprune.custom_from_mask(module, "weight", w_mask)
        if module.bias is not None:
            tprune.custom_from_mask(module, "bias", keep.float())
        plan_layers.append((name, k, n_out))
        masked_scores += shift[~keep].tolist()
        kept_scores += shift[keep].tolist()
    if fine_tune is not None:
        model = fine_tune(model) or model
    for _, module in layers:
        for pname in ("weight", "bias"):
            if tprune.is_pruned(module) and hasattr(module, f"{pname}_mask"):
                tprune.remove(module, pname)
    plan = DefensivePlan(tuple(plan_layers), c.epsilon, float(np.mean(masked_scores)) if masked_scores else 0.0,
                         float(np.mean(kept_scores)) if kept_scores else 0.0)
    return model.cpu().eval(), plan
