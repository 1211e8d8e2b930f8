"""Audit artifacts you already have: a sealed (or ONNX/TFLite) artifact next to its fp32 reference,
on your own member / non-member data, whatever the input shape (feature rows, images, sequences).
Black-box only, so it works on exactly what ships.

* Membership: the loss/confidence threshold attacks; with ``train_fn`` (your training recipe
  as a callable) also LiRA, online and offline, with reference models trained by it on
  balanced random halves of the members + non-members.
* Robustness: the Adversarial Robustness Toolbox's square attack (score-based, L-inf) run on
  the fp32 reference and transferred to each artifact, and run on each artifact itself; with
  ``decision_attack`` also HopSkipJump or the boundary attack (labels only). White-box
  FGSM/PGD is not offered here: the reference is a file, not a torch module.

Images and sequences are audited as flat feature rows (``artifacts.Reshaped`` restores the
model's input shape on every call), so the disagreement search and the explanations work
per pixel. The report has the same schema as ``run_audit``'s, one dataset (``data``), one seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError

from . import membership as MI
from .artifacts import ArtifactBase, Reshaped
from .blackbox import ArtAttack, art_square_applies, decision_attack, square_attack
from .data import Dataset
from .disagreement import search_disagreements
from .explain import explanation_drift, feature_groups
from .robustness import random_search_attack, robust_accuracy

__all__ = ["UserAuditConfig", "audit_artifacts", "load_npz", "TrainFn"]

TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]  # (x, y, seed) -> predict(x) -> logits, or a torch module

SCHEMA = "edgeseal.audit/1"


@dataclass(frozen=True, kw_only=True)
class UserAuditConfig:
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    lo: float | None = None  # valid input range for clipping (None: unbounded)
    hi: float | None = None
    queries: int = 200
    examples: int = 200
    radius: float = 0.1
    explanation_examples: int = 50
    seed: int = 0
    reference_models: int = 8  # LiRA, when a train_fn is given: an even number >= 2
    decision_attack: str | None = None  # "hopskipjump" or "boundary": also a labels-only attack (ART)
    decision_examples: int = 50

    def __post_init__(self) -> None:
        eps = tuple(float(e) for e in self.epsilons)
        if not eps or any(e < 0 for e in eps):
            raise ConfigError(f"epsilons must be a non-empty list of numbers >= 0, got {list(eps)}")
        object.__setattr__(self, "epsilons", eps)
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and not self.lo < self.hi):
            raise ConfigError("give both lo and hi (lo < hi) to clip inputs, or neither")
        if min(self.queries, self.examples, self.explanation_examples, self.decision_examples) < 1 or self.radius <= 0:
            raise ConfigError("queries, examples, explanation_examples and decision_examples must be >= 1 and radius > 0")
        if self.reference_models < 2 or self.reference_models % 2:
            raise ConfigError(f"reference_models={self.reference_models} must be an even number >= 2 (LiRA)")
        if self.decision_attack is not None and self.decision_attack not in ("hopskipjump", "boundary"):
            raise ConfigError(f"decision_attack={self.decision_attack!r} must be 'hopskipjump' or 'boundary'")


def load_npz(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_members, y_members, x_nonmembers, y_nonmembers`` from an .npz file."""
    from edgeseal.runtime.evaluate import read_npz

    keys = ("x_members", "y_members", "x_nonmembers", "y_nonmembers")
    data = read_npz(path, f"audit data {path}")  # two data sets (members, non-members) in one file
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(f"audit data {path} lacks {missing}; it needs arrays {', '.join(keys)}")
    xm, ym, xn, yn = (np.asarray(data[k]) for k in keys)
    if xm.ndim < 2 or len(xm) != len(ym) or len(xn) != len(yn) or xm.shape[1:] != xn.shape[1:]:
        raise ConfigError(f"audit data {path}: x/y lengths or feature shapes do not match")
    return xm.astype(np.float32), ym.astype(np.int64), xn.astype(np.float32), yn.astype(np.int64)


def _as_predict(model: Any, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """What ``train_fn`` returned, as flat rows -> logits: a callable, an object with ``predict``, or a torch module."""
    if hasattr(model, "parameters") and hasattr(model, "eval"):
        from edgeseal.converters.train import predict_logits

        run = lambda z: predict_logits(model, z, device="cpu")  # noqa: E731
    elif hasattr(model, "predict"):
        run = model.predict
    elif callable(model):
        run = model
    else:
        raise ConfigError(f"train_fn returned {type(model).__name__}; return a predict(x) -> logits callable or a torch "
                          "module")
    return lambda z: np.asarray(run(np.asarray(z, np.float32).reshape(len(z), *shape)), np.float64)


def audit_artifacts(reference: ArtifactBase, artifacts: Sequence[ArtifactBase], *, x_members: np.ndarray,
                    y_members: np.ndarray, x_nonmembers: np.ndarray, y_nonmembers: np.ndarray,
                    config: UserAuditConfig | None = None, train_fn: TrainFn | None = None) -> dict[str, Any]:
    """Membership inference, robustness, disagreement and drift of ``artifacts`` vs ``reference``.

    Inputs may have any sample shape (``x_members.shape[1:]``); each artifact is called with it.
    ``train_fn(x, y, seed)`` — your training recipe, returning a predict callable or a torch module —
    adds LiRA with ``config.reference_models`` reference models.
    """
    from .config import config_to_dict
    from .pipeline import environment, membership_results, summarize_seeds

    cfg = config or UserAuditConfig()
    if not artifacts:
        raise ConfigError("give at least one artifact to audit next to the reference")
    started = time.perf_counter()
    shape = tuple(np.shape(x_members)[1:])
    flat = len(shape) == 1
    x = np.concatenate([x_members, x_nonmembers]).reshape(len(x_members) + len(x_nonmembers), -1)
    y = np.concatenate([y_members, y_nonmembers])
    is_member = np.r_[np.ones(len(x_members), bool), np.zeros(len(x_nonmembers), bool)]
    if not flat:  # images / sequences: the attacks see flat rows, the models their own input shape
        reference, artifacts = Reshaped.wrap(reference, shape), [Reshaped.wrap(a, shape) for a in artifacts]
    n_classes = int(reference.predict(x[:1]).shape[1])
    ds = Dataset(name="data", x=x, y=y, n_classes=n_classes, lo=cfg.lo, hi=cfg.hi, image_shape=None)
    arts = [reference, *artifacts]
    refs = None
    attacks: tuple[MI.MiaAttack, ...] = (MI.MiaAttack.LOSS, MI.MiaAttack.CONFIDENCE)
    if train_fn is not None:
        refs = MI.train_reference_models(x, y, count=cfg.reference_models, seed=cfg.seed,
                                         train_fn=lambda xt, yt, s: _as_predict(train_fn(xt.reshape(len(xt), *shape), yt, s), shape))
        attacks = tuple(MI.MiaAttack)
    mia, combined = membership_results(arts, ds, is_member, refs, attacks=attacks,
                                together=[a.name for a in artifacts] if len(artifacts) >= 2 else [])
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(np.where(~is_member)[0])
    idx = order[: cfg.examples]
    xs, ys = x[idx], y[idx]
    x_img = xs.reshape(len(xs), *shape)
    curves: dict[str, dict[str, list[float]]] = {a.name: {"transfer": [], "blackbox": []} for a in arts}
    use_art = art_square_applies(shape)  # ART's square attack is for images; own random search elsewhere

    def square(i: int, eps: float) -> np.ndarray:
        if use_art:
            return square_attack(flat_arts[i], x_img, ys, eps, queries=cfg.queries, n_classes=n_classes, lo=cfg.lo,
                                 hi=cfg.hi, seed=cfg.seed).reshape(len(xs), -1)
        return random_search_attack(arts[i], xs, ys, eps, queries=cfg.queries, lo=cfg.lo, hi=cfg.hi, seed=cfg.seed)

    flat_arts = [a.inner if isinstance(a, Reshaped) else a for a in arts]
    for eps in cfg.epsilons:
        x_ref = square(0, eps)
        for i, a in enumerate(arts):
            curves[a.name]["transfer"].append(robust_accuracy(a, x_ref, ys))
            x_bb = x_ref if a is reference else square(i, eps)
            curves[a.name]["blackbox"].append(robust_accuracy(a, x_bb, ys))
    which = ("ART square attack (L-inf, score-based)" if use_art else
             "edgeseal's random search over the eps-box (square-attack style, score-based; ART's square attack is "
             "for images only)")
    attack_notes = {"transfer": f"{which} on the fp32 reference, transferred",
                    "blackbox": f"{which} on the artifact itself, {cfg.queries} iterations per epsilon"}
    if cfg.decision_attack is not None:
        d_idx = idx[: cfg.decision_examples]
        xd = x[d_idx].reshape(len(d_idx), *shape)
        for a, fa in zip(arts, flat_arts):
            res = decision_attack(fa, xd, y[d_idx], attack=cfg.decision_attack, queries=cfg.queries,
                                  n_classes=n_classes, lo=cfg.lo, hi=cfg.hi, seed=cfg.seed)
            curves[a.name][cfg.decision_attack] = [res.robust_accuracy(e) for e in cfg.epsilons]
        attack_notes[cfg.decision_attack] = (f"ART {ArtAttack(cfg.decision_attack).name} (labels only, minimal L-inf "
                                             f"perturbation) on the artifact, ~{cfg.queries} queries, first "
                                             f"{len(d_idx)} examples; robust at eps = correct and no adversarial "
                                             "example found within eps")
    disagreement = {a.name: search_disagreements(reference, a, xs, x, radius=cfg.radius, queries=cfg.queries,
                                                 lo=cfg.lo, hi=cfg.hi, seed=cfg.seed).to_dict() for a in artifacts}
    groups = feature_groups(x.shape[1], None, 1)
    exp_idx = order[: cfg.explanation_examples]
    explanation = {a.name: explanation_drift(reference, a, x[exp_idx], groups=groups, baseline=x.mean(0)).to_dict()
                   for a in artifacts}
    seed_result = {"seed": cfg.seed,
                   "split": {"seed": None, "n_members": int(is_member.sum()), "n_nonmembers": int((~is_member).sum()),
                             "members": "rows of x_members", "nonmembers": "rows of x_nonmembers"},
                   "indices": {"robustness": idx.tolist(), "explanation": exp_idx.tolist()},
                   "artifacts": mia, "combined": combined,
                   "robustness": {"epsilons": list(cfg.epsilons), "examples": int(len(idx)), "norm": "linf",
                                  "curves": curves, "attacks": attack_notes},
                   "disagreement": disagreement, "explanation": explanation}
    membership_attacks = {"loss": "threshold on cross-entropy (Yeom et al. 2018)",
                          "confidence": "threshold on logit-scaled true-class confidence",
                          "combined": "sum of standardized per-artifact scores"}
    if refs is not None:
        membership_attacks.update(lira="online LiRA, fixed variance (Carlini et al. 2022), reference models from the "
                                       "user's train_fn", lira_offline="offline LiRA (OUT reference models only)")
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "config": {**config_to_dict(cfg), "seeds": [cfg.seed], "mode": "artifacts"},
        "environment": environment(),
        "attacks": {"membership": membership_attacks,
                    "members": "x_members trained the model; x_nonmembers did not (as given by the user)"},
        "datasets": {"data": {"n_records": int(len(y)), "n_features": int(x.shape[1]), "n_classes": n_classes,
                              "input_shape": list(shape),
                              "input_range": None if cfg.lo is None else [cfg.lo, cfg.hi],
                              "members_note": "Members and non-members as given in the data file.",
                              "reference_models": None if refs is None else {
                                  "count": refs.count, "seed": refs.seed,
                                  "pool": "members + non-members; each reference trained by train_fn on a balanced "
                                          "random half"},
                              "seeds": [seed_result],
                              "summary": summarize_seeds([seed_result])}},
    }
