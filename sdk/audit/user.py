"""Audit artifacts you already have: a sealed (or ONNX/TFLite) artifact next to its fp32 reference,
on your own member / non-member data. Black-box only, so it works on exactly what ships.

What it cannot do without your training recipe: LiRA (it needs reference models
trained like yours) and white-box FGSM/PGD (the reference here is a file, not a
torch module). In their place: the loss/confidence threshold attacks, and the
black-box search run on the fp32 reference and transferred to each artifact.
The report has the same schema as ``run_audit``'s, with one dataset (``data``)
and one seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError

from . import membership as MI
from .artifacts import ArtifactBase
from .data import Dataset
from .disagreement import search_disagreements
from .explain import explanation_drift, feature_groups
from .robustness import random_search_attack, robust_accuracy

__all__ = ["UserAuditConfig", "audit_artifacts", "load_npz"]

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

    def __post_init__(self) -> None:
        eps = tuple(float(e) for e in self.epsilons)
        if not eps or any(e < 0 for e in eps):
            raise ConfigError(f"epsilons must be a non-empty list of numbers >= 0, got {list(eps)}")
        object.__setattr__(self, "epsilons", eps)
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and not self.lo < self.hi):
            raise ConfigError("give both lo and hi (lo < hi) to clip inputs, or neither")
        if min(self.queries, self.examples, self.explanation_examples) < 1 or self.radius <= 0:
            raise ConfigError("queries, examples and explanation_examples must be >= 1 and radius > 0")


def load_npz(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_members, y_members, x_nonmembers, y_nonmembers`` from an .npz file."""
    keys = ("x_members", "y_members", "x_nonmembers", "y_nonmembers")
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read audit data {path}: {e}; give an .npz with arrays {', '.join(keys)}") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(f"audit data {path} lacks {missing}; it needs arrays {', '.join(keys)}")
    xm, ym, xn, yn = (np.asarray(data[k]) for k in keys)
    if len(xm) != len(ym) or len(xn) != len(yn) or xm.shape[1:] != xn.shape[1:]:
        raise ConfigError(f"audit data {path}: x/y lengths or feature shapes do not match")
    return xm.astype(np.float32), ym.astype(np.int64), xn.astype(np.float32), yn.astype(np.int64)


def audit_artifacts(reference: ArtifactBase, artifacts: Sequence[ArtifactBase], *, x_members: np.ndarray,
                    y_members: np.ndarray, x_nonmembers: np.ndarray, y_nonmembers: np.ndarray,
                    config: UserAuditConfig | None = None) -> dict[str, Any]:
    """Membership inference, robustness, disagreement and drift of ``artifacts`` vs ``reference``."""
    from .config import config_to_dict
    from .pipeline import _environment, _membership, _summarize

    cfg = config or UserAuditConfig()
    if not artifacts:
        raise ConfigError("give at least one artifact to audit next to the reference")
    started = time.perf_counter()
    x = np.concatenate([x_members, x_nonmembers]).reshape(len(x_members) + len(x_nonmembers), -1)
    y = np.concatenate([y_members, y_nonmembers])
    is_member = np.r_[np.ones(len(x_members), bool), np.zeros(len(x_nonmembers), bool)]
    n_classes = int(reference.predict(x[:1]).shape[1])
    ds = Dataset(name="data", x=x, y=y, n_classes=n_classes, lo=cfg.lo, hi=cfg.hi, image_shape=None)
    arts = [reference, *artifacts]
    mia, combined = _membership(arts, ds, is_member, None, attacks=(MI.MiaAttack.LOSS, MI.MiaAttack.CONFIDENCE),
                                together=[a.name for a in artifacts] if len(artifacts) >= 2 else [])
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(np.where(~is_member)[0])
    idx = order[: cfg.examples]
    xs, ys = x[idx], y[idx]
    curves = {a.name: {"transfer": [], "blackbox": []} for a in arts}
    for eps in cfg.epsilons:
        x_ref = random_search_attack(reference, xs, ys, eps, queries=cfg.queries, lo=cfg.lo, hi=cfg.hi, seed=cfg.seed)
        for a in arts:
            curves[a.name]["transfer"].append(robust_accuracy(a, x_ref, ys))
            x_bb = x_ref if a is reference else random_search_attack(a, xs, ys, eps, queries=cfg.queries, lo=cfg.lo,
                                                                      hi=cfg.hi, seed=cfg.seed)
            curves[a.name]["blackbox"].append(robust_accuracy(a, x_bb, ys))
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
                                  "curves": curves,
                                  "attacks": {"transfer": "black-box random search on the fp32 reference, transferred",
                                              "blackbox": f"black-box random search on the artifact, {cfg.queries} "
                                                          "queries per example and epsilon"}},
                   "disagreement": disagreement, "explanation": explanation}
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "config": {**config_to_dict(cfg), "seeds": [cfg.seed], "mode": "artifacts"},
        "environment": _environment(),
        "attacks": {"membership": {"loss": "threshold on cross-entropy (Yeom et al. 2018)",
                                   "confidence": "threshold on logit-scaled true-class confidence",
                                   "combined": "sum of standardized per-artifact scores"},
                    "members": "x_members trained the model; x_nonmembers did not (as given by the user)"},
        "datasets": {"data": {"n_records": int(len(y)), "n_features": int(x.shape[1]), "n_classes": n_classes,
                              "input_range": None if cfg.lo is None else [cfg.lo, cfg.hi],
                              "members_note": "Members and non-members as given in the data file.",
                              "reference_models": None, "seeds": [seed_result],
                              "summary": _summarize([seed_result])}},
    }
