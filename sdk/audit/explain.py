"""Explanation drift: does compression change *why* the model decides?

Occlusion attributions (Zeiler & Fergus 2014), black-box so they run on any
artifact: feature group ``j`` gets attribution ``z_c(x) - z_c(x with group j
replaced by a baseline)``, where ``c`` is the fp32 model's class for ``x`` (the
same class for both models, so the two explanations answer the same question).
Groups are single features for tabular data and ``patch x patch`` squares for
images; the baseline is the pool mean (tabular) or 0 (images: a blank patch).
Drift is the Spearman rank correlation between the fp32 and artifact attributions
of each input, plus the overlap of their top-5 groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseal.runtime.errors import ConfigError

from . import metrics as M
from .artifacts import Artifact

__all__ = ["feature_groups", "occlusion", "ExplanationDrift", "explanation_drift"]


def feature_groups(n_features: int, image_shape: tuple[int, ...] | None, patch: int) -> list[np.ndarray]:
    """Single features (tabular), ``patch x patch`` squares of an (h, w) image, or of a channel-first
    (c, h, w) image with every channel of a square in one group (e.g. an RGB crop)."""
    if image_shape is None:
        return [np.array([j]) for j in range(n_features)]
    if len(image_shape) not in (2, 3) or int(np.prod(image_shape)) != n_features:
        raise ConfigError(f"image_shape {tuple(image_shape)} must be (h, w) or (c, h, w) and hold "
                          f"{n_features} features")
    c, h, w = (1, *image_shape) if len(image_shape) == 2 else image_shape
    grid = np.arange(c * h * w).reshape(c, h, w)
    return [grid[:, r : r + patch, q : q + patch].ravel() for r in range(0, h, patch) for q in range(0, w, patch)]


def occlusion(artifact: Artifact, x: np.ndarray, classes: np.ndarray, groups: list[np.ndarray],
              baseline: np.ndarray) -> np.ndarray:
    """Attributions (n, n_groups): drop of the class logit when each group is occluded.

    Inputs are occluded a bounded chunk at a time (~32 MB of float32), so large images
    (a 224 x 224 x 3 crop) do not build every occluded copy at once."""
    n, g = x.shape[0], len(groups)
    d = x.shape[1]
    per = max(1, (1 << 23) // max(1, (g + 1) * d))  # inputs per chunk
    out = []
    for s in range(0, n, per):
        xs, cs = x[s : s + per], classes[s : s + per]
        m = xs.shape[0]
        batch = np.repeat(xs[:, None, :], g + 1, axis=1)  # (m, g+1, d); slot 0 is the clean input
        for j, cols in enumerate(groups):
            batch[:, j + 1, cols] = baseline[cols]
        z = artifact.predict(batch.reshape(m * (g + 1), -1)).reshape(m, g + 1, -1)
        own = z[np.arange(m), :, cs]  # (m, g+1)
        out.append(own[:, :1] - own[:, 1:])
    return np.concatenate(out)


@dataclass(frozen=True, kw_only=True)
class ExplanationDrift:
    artifact: str
    examples: int
    groups: int
    spearman: list[float]
    top5_overlap: list[float]

    def to_dict(self) -> dict:
        s = np.asarray(self.spearman)
        return {"artifact": self.artifact, "examples": self.examples, "groups": self.groups,
                "spearman_mean": float(s.mean()), "spearman_median": float(np.median(s)),
                "spearman_p10": float(np.percentile(s, 10)), "top5_overlap_mean": float(np.mean(self.top5_overlap))}


def explanation_drift(reference: Artifact, artifact: Artifact, x: np.ndarray, *, groups: list[np.ndarray],
                      baseline: np.ndarray) -> ExplanationDrift:
    classes = np.argmax(reference.predict(x), axis=1)
    a_ref = occlusion(reference, x, classes, groups, baseline)
    a_art = occlusion(artifact, x, classes, groups, baseline)
    rho = [M.spearman(a, b) for a, b in zip(a_ref, a_art)]
    k = min(5, len(groups))
    top = [len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k for a, b in zip(a_ref, a_art)]
    return ExplanationDrift(artifact=artifact.name, examples=int(x.shape[0]), groups=len(groups),
                            spearman=[float(v) for v in rho], top5_overlap=[float(v) for v in top])
