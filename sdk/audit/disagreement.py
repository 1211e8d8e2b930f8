"""Int8-vs-fp32 disagreement search: inputs near the data where the deployed artifact and the
fp32 reference predict different classes (the signature of quantization-triggered behaviour).

Black-box on both sides. Around each start record (non-members), a random search
inside the L-infinity ball of radius ``r`` minimizes the gap
``margin_artifact(x', c) - margin_fp32(x', c)`` where ``c`` is the fp32 class of
the record: it pushes the artifact away from the fp32 decision while the fp32
model keeps it. When the two argmaxes differ, a bisection on the perturbation's
scale finds the smallest still-disagreeing point, so reported distances are
near-minimal for the direction found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics as M
from .artifacts import Artifact

__all__ = ["DisagreementResult", "search_disagreements"]

_BISECTION_STEPS = 12


@dataclass(frozen=True, kw_only=True)
class DisagreementResult:
    artifact: str
    start_points: int
    natural: int  # disagreements on the unperturbed records themselves
    found: int  # records with a disagreeing point within the radius (natural included)
    radius: float
    queries_per_point: int
    linf_distance: list[float]  # per found point: L-inf distance to its start record
    nearest_data_l2: list[float]  # per found point: L2 distance to the nearest record of the pool
    typical_data_l2: float  # median L2 distance between a record and its nearest other record

    @property
    def rate(self) -> float:
        return self.found / self.start_points

    def to_dict(self) -> dict:
        q = (lambda v, p: float(np.percentile(v, p)) if v else None)
        return {"artifact": self.artifact, "start_points": self.start_points, "natural": self.natural,
                "found": self.found, "rate": self.rate, "radius": self.radius,
                "queries_per_point": self.queries_per_point,
                "linf_distance": {"min": q(self.linf_distance, 0), "median": q(self.linf_distance, 50),
                                  "max": q(self.linf_distance, 100)},
                "nearest_data_l2": {"median": q(self.nearest_data_l2, 50)},
                "typical_data_l2": self.typical_data_l2,
                "linf_distances": [round(v, 6) for v in self.linf_distance]}


def _nearest_l2(points: np.ndarray, pool: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    d2 = (points**2).sum(1)[:, None] + (pool**2).sum(1)[None, :] - 2 * points @ pool.T
    d2 = np.maximum(d2, 0)
    if exclude_self:
        d2[d2 < 1e-12] = np.inf
    return np.sqrt(d2.min(axis=1))


def search_disagreements(reference: Artifact, artifact: Artifact, x: np.ndarray, pool: np.ndarray, *,
                         radius: float, queries: int, lo=None, hi=None, seed: int = 0) -> DisagreementResult:
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    n, d = x.shape

    def clip(z):
        return np.clip(z, lo, hi) if lo is not None else z

    def gap_and_disagree_at(_x, cls, xq):
        zr, za = reference.predict(xq), artifact.predict(xq)
        return M.margin(za, cls) - M.margin(zr, cls), np.argmax(za, 1) != np.argmax(zr, 1)

    def gap_and_disagree(xq):
        return gap_and_disagree_at(x, c, xq)

    c = np.argmax(reference.predict(x), axis=1)
    delta = np.zeros_like(x)
    best, found = gap_and_disagree(clip(x))
    natural_mask = found.copy()
    natural = int(found.sum())
    for t in range(queries):
        todo = ~found
        if not todo.any():
            break
        sigma = radius * max(0.05, 0.5 * (1 - t / queries))
        cand = np.clip(delta + sigma * rng.standard_normal((n, d)), -radius, radius)
        cand[~todo] = delta[~todo]
        g, dis = gap_and_disagree(clip(x + cand))
        better = (g < best) & todo
        delta[better], best[better] = cand[better], g[better]
        newly = dis & todo
        delta[newly] = cand[newly]
        found |= newly
    # Shrink each disagreeing perturbation to the smallest scale that still disagrees (bisection);
    # a natural disagreement (scale 0) needs no perturbation at all.
    idx = np.where(found)[0]
    xs, ds = x[idx], delta[idx]
    if idx.size:
        lo_s, hi_s = np.zeros(idx.size), np.ones(idx.size)
        for _ in range(_BISECTION_STEPS):
            mid = (lo_s + hi_s) / 2
            _, dis = gap_and_disagree_at(xs, c[idx], clip(xs + mid[:, None] * ds))
            hi_s, lo_s = np.where(dis, mid, hi_s), np.where(dis, lo_s, mid)
        scale = np.where(np.isin(idx, np.where(natural_mask)[0]), 0.0, hi_s)
        final = clip(xs + scale[:, None] * ds)
    else:
        final = np.zeros((0, d))
    linf = np.abs(final - xs).max(axis=1) if idx.size else np.zeros(0)
    near = _nearest_l2(final, pool) if idx.size else np.zeros(0)
    typical = float(np.median(_nearest_l2(pool[: min(len(pool), 500)], pool, exclude_self=True)))
    return DisagreementResult(artifact=artifact.name, start_points=n, natural=natural, found=int(found.sum()),
                              radius=radius, queries_per_point=queries + 1 + _BISECTION_STEPS,
                              linf_distance=[float(v) for v in linf], nearest_data_l2=[float(v) for v in near],
                              typical_data_l2=typical)
