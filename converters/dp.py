"""Differentially private training with Opacus: DP fine-tuning and DP distillation.

DP-SGD (Abadi et al. 2016): per-example gradients clipped to ``max_grad_norm``, Gaussian
noise added, batches drawn by Poisson sampling; Opacus' RDP accountant picks the noise for
the target (epsilon, delta) over the planned steps and reports what was spent.

* ``dp_finetune(model, x, y)`` — cross-entropy on the labelled records, from whatever the
  model already is (pretrained, pruned). Zero weights (pruning) stay zero.
* ``dp_distill(teacher, student, x)`` — the student learns only the teacher's soft labels on
  the records ``x`` (no labels needed); the teacher is not private and is never trained.

What epsilon covers (``DpResult.covers`` / ``not_covered``, also written into the compress
report and the sealed package's manifest): the records passed to these functions, for
everything DP-SGD did with them. It says nothing about data that shaped the model before
(the pretraining data of a fine-tuned model; the teacher's training data, whose
memorisation a student can inherit through soft labels) or after (int8 calibration ranges,
eval-based selection). Opacus runs here with its fast non-cryptographic noise
(``secure_mode=False``): sound for measurement; a deployment guarantee wants secure_mode.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .common import Device, as_enum, progress, resolve_device, seed_everything
from .train import keep_zeros

__all__ = ["DpConfig", "DpResult", "dp_finetune", "dp_distill", "dp_train"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DpConfig:
    """Target (epsilon, delta) and the DP-SGD settings. ``delta=None`` takes ``1 / (10 N)``."""

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    device: Device = Device.AUTO
    show_progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", as_enum(Device, self.device, "device"))
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0):
            raise ConfigError(f"[dp] epsilon={self.epsilon!r} must be > 0")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ConfigError(f"[dp] delta={self.delta} must be in (0, 1); well below 1/N records, e.g. 1e-5")
        if not self.max_grad_norm > 0:
            raise ConfigError(f"[dp] max_grad_norm={self.max_grad_norm} must be > 0")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("[dp] epochs and batch_size must be >= 1 and lr > 0")

    def delta_for(self, n: int) -> float:
        return float(self.delta) if self.delta is not None else 1.0 / (10 * n)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DpResult:
    """What DP-SGD spent, from Opacus' RDP accountant, and what that epsilon covers."""

    mode: str  # "finetune", "distill" or "scratch"
    epsilon: float  # spent
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    epochs: int
    steps: int
    sample_rate: float
    records: int
    accountant: str = "rdp"
    covers: str = ""
    not_covered: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["not_covered"] = list(self.not_covered)
        return d

    def summary(self) -> str:
        return (f"DP-SGD ({self.mode}): (epsilon {self.epsilon:.3g}, delta {self.delta:.2g}) over {self.records:,} "
                f"records, {self.steps} steps, noise {self.noise_multiplier:.3g}, clip {self.max_grad_norm:g}")


_SCOPE = {
    "finetune": ("the records DP fine-tuning trained on (every use DP-SGD made of them)",
                 ("the data the model was trained on before DP fine-tuning (its pretraining): that memorisation is "
                  "still in the weights",)),
    "distill": ("the records the student was distilled on (the teacher's soft labels of them are computed per record "
                "inside DP-SGD)",
                ("the teacher's own training data: the teacher is not private and its soft labels can carry what it "
                 "memorised",)),
    "scratch": ("every use of the training records: the model started from a data-independent initialisation", ()),
}


def _scope(mode: str) -> tuple[str, tuple[str, ...]]:
    covers, not_covered = _SCOPE[mode]
    return covers, not_covered + (
        "anything computed from other data or outside DP-SGD: int8 calibration ranges, selection on eval data",
    )


def _opacus() -> Any:
    try:
        import opacus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UnsupportedError("DP training needs Opacus: pip install 'edgeseal[compress]'", reason=str(exc)) from None
    return opacus


def dp_train(model: Any, x: np.ndarray, targets: np.ndarray, config: DpConfig, *, mode: str,
             soft_temperature: float | None = None) -> tuple[Any, DpResult]:
    """DP-SGD on ``(x, targets)``: integer labels (cross-entropy) or, with ``soft_temperature``, teacher
    logits (KL to their softmax at that temperature, times T^2). Zero weights stay zero."""
    opacus = _opacus()
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    if mode not in _SCOPE:
        raise ConfigError(f"DP mode {mode!r} must be one of {sorted(_SCOPE)}")
    if len(x) != len(targets) or len(x) == 0:
        raise ConfigError(f"DP training needs one target per input and at least one record; got {len(x)} inputs, "
                          f"{len(targets)} targets")
    errors = opacus.validators.ModuleValidator.validate(model.train(), strict=False)
    if errors:
        hint = ("; replace BatchNorm with GroupNorm (opacus.validators.ModuleValidator.fix)"
                if "BatchNorm" in str(errors[0]) else "")
        raise UnsupportedError(f"Opacus cannot train this model with per-example gradients: {errors[0]}{hint}",
                               reason="model not DP-compatible")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    delta = config.delta_for(len(x))
    xt = torch.as_tensor(np.asarray(x, np.float32))
    tt = torch.as_tensor(np.asarray(targets, np.float32 if soft_temperature else np.int64))
    loader = DataLoader(TensorDataset(xt, tt), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    model = model.to(device).train()
    zeros = keep_zeros(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure_mode=False warning; see the module docstring
        engine = opacus.PrivacyEngine(accountant="rdp", secure_mode=False)
        pmodel, popt, ploader = engine.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=config.epsilon, target_delta=delta,
            epochs=config.epochs, max_grad_norm=config.max_grad_norm)
        steps = 0
        with progress(f"DP-SGD {mode}", config.epochs * len(ploader), enabled=config.show_progress) as bar:
            for _ in range(config.epochs):
                for xb, tb in ploader:
                    steps += 1
                    bar.advance()
                    if len(xb) == 0:  # Poisson sampling can draw an empty batch; the step still counts
                        popt.zero_grad(set_to_none=True)
                        continue
                    xb, tb = xb.to(device), tb.to(device)
                    out = pmodel(xb)
                    if soft_temperature:
                        t = soft_temperature
                        loss = F.kl_div(F.log_softmax(out / t, -1), F.log_softmax(tb / t, -1), reduction="batchmean",
                                        log_target=True) * t * t
                    else:
                        loss = F.cross_entropy(out, tb)
                    popt.zero_grad(set_to_none=True)
                    loss.backward()
                    popt.step()
                    zeros(steps, 0)
        spent = float(engine.get_epsilon(delta))
    if hasattr(pmodel, "remove_hooks"):
        pmodel.remove_hooks()  # the per-sample-gradient hooks would otherwise stay on the returned module
    model = pmodel._module if hasattr(pmodel, "_module") else model
    for mod in model.modules():  # drop Opacus' per-sample-gradient leftovers so the module exports and pickles cleanly
        for p in mod.parameters(recurse=False):
            for attr in ("grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)
    covers, not_covered = _scope(mode)
    result = DpResult(mode=mode, epsilon=spent, delta=delta, target_epsilon=float(config.epsilon),
                      noise_multiplier=float(popt.noise_multiplier), max_grad_norm=float(config.max_grad_norm),
                      epochs=config.epochs, steps=steps, sample_rate=float(ploader.sample_rate), records=len(x),
                      covers=covers, not_covered=not_covered)
    return model.cpu().eval(), result


def dp_finetune(model: Any, x: np.ndarray, y: np.ndarray, config: DpConfig, *, from_scratch: bool = False) -> tuple[Any, DpResult]:
    """DP fine-tuning on labelled ``(x, y)``; ``from_scratch`` records that the model starts untrained
    (then epsilon covers every use of the records)."""
    return dp_train(model, x, np.asarray(y, np.int64), config, mode="scratch" if from_scratch else "finetune")


def dp_distill(teacher: Any, student: Any, x: np.ndarray, config: DpConfig, *, temperature: float = 1.0,
               ) -> tuple[Any, DpResult]:
    """DP distillation: ``student`` learns ``teacher``'s soft labels of ``x`` with DP-SGD (no labels).

    ``temperature`` 1 by default: at the T = 4 usual without DP, the T^2-scaled soft-target gradients
    are clipped and drowned by the noise (measured on digits: a fresh student stayed at chance, 12 %,
    where T = 1 reached 71 % at epsilon 4)."""
    from .train import predict_logits

    if not temperature > 0:
        raise ConfigError(f"distillation temperature={temperature} must be > 0")
    soft = predict_logits(teacher, x, device=config.device)
    return dp_train(student, x, soft, config, mode="distill", soft_temperature=temperature)
