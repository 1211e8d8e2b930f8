"""Attribution drift with the field's explainers: occlusion, LIME and SHAP, fp32 vs each artifact.

All three are black-box (they only call ``Artifact.predict``) and explain the
same thing: the raw score (logit) of the class the fp32 reference picks for the
input, over the same *feature groups* (single features for tabular data,
``patch x patch`` squares for images, see :func:`explain.feature_groups`). A group
that is "off" takes the baseline value (0 for images, the pool mean for tabular
data), exactly as in occlusion.

- ``occlusion``: the drop of the class score when one group is switched off
  (:func:`explain.occlusion`).
- ``lime``: the ``lime`` package's ``LimeBase`` (kernel-weighted ridge regression
  on binary group masks), sampled the way ``lime_image`` samples superpixels:
  uniform random on/off masks, the first one all on, cosine distance to it,
  kernel width 0.25.
- ``shap``: the ``shap`` package's ``KernelExplainer`` over the group masks with
  an all-off background, so the values are Shapley values of switching groups on
  (``l1_reg=False``: every group keeps a value).

The fp32 reference and every artifact are explained with the *same* random masks
(a fixed seed per input), so two identical models get identical attributions
and the drift measures the model, not the sampling. Drift per input: Spearman
rank correlation of the two attribution vectors and the overlap of their top-k
groups (values within 1e-4 of the largest |value| count as ties at 0).
Image pictures (:func:`group_map`) spread each group's value over its
pixels.

Images are flat vectors with an ``image_shape``; a larger model (e.g. an
EfficientNet crop) plugs in with coarser groups (``patch``) and the same calls: :func:`.crops.explain_crops`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from . import metrics as M
from .artifacts import Artifact
from .explain import occlusion

__all__ = ["Method", "AttributionSettings", "AttributionDrift", "AttributionStudy", "attributions", "map_drift",
           "attribution_study", "group_map", "compose"]


class Method(str, Enum):
    OCCLUSION = "occlusion"
    LIME = "lime"
    SHAP = "shap"


@dataclass(frozen=True, kw_only=True)
class AttributionSettings:
    """Sample budgets (model calls per input and method) and the seed of the shared random masks."""

    lime_samples: int = 300
    shap_samples: int = 300
    top_k: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lime_samples < 10 or self.shap_samples < 10:
            raise ConfigError("lime_samples and shap_samples must be >= 10 model calls per input")
        if self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")


def compose(x: np.ndarray, z: np.ndarray, groups: Sequence[np.ndarray], baseline: np.ndarray) -> np.ndarray:
    """Inputs for masks ``z`` (s, n_groups) of one input ``x``: groups with ``z == 0`` take the baseline
    (its exact values; a feature in several groups is off when any of them is off)."""
    z = np.asarray(z)
    out = np.repeat(np.asarray(x, np.float32)[None, :], z.shape[0], axis=0)
    base = np.asarray(baseline, np.float32)
    for j, cols in enumerate(groups):
        rows = np.flatnonzero(z[:, j] == 0)
        if rows.size:
            out[np.ix_(rows, cols)] = base[cols]
    return out


_CHUNK_VALUES = 1 << 23  # compose at most ~32 MB of float32 inputs at a time (a 224x224x3 crop: 55 masks)


def _masked_scores(artifact: Artifact, x: np.ndarray, z: np.ndarray, groups, baseline) -> np.ndarray:
    """``artifact.predict`` of the inputs for masks ``z``, composed a bounded chunk at a time."""
    step = max(1, _CHUNK_VALUES // max(1, x.shape[0]))
    return np.concatenate([artifact.predict(compose(x, z[i : i + step], groups, baseline))
                           for i in range(0, len(z), step)])


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """KernelExplainer draws from NumPy's global generator: seed it here, restore the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _lime(artifact: Artifact, x: np.ndarray, c: int, groups, baseline, samples: int,
          seed: int) -> tuple[np.ndarray, float]:
    try:
        from lime.lime_base import LimeBase
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UnsupportedError("LIME attributions need the lime package: pip install 'edgeseal[privacy]'",
                               reason=str(e)) from None
    from sklearn.metrics import pairwise_distances

    g = len(groups)
    rs = np.random.RandomState(seed)
    z = rs.randint(0, 2, samples * g).reshape(samples, g)
    z[0, :] = 1  # as lime_image: the first sample is the input itself
    scores = _masked_scores(artifact, x, z, groups, baseline)
    distances = pairwise_distances(z, z[:1], metric="cosine").ravel()
    width = 0.25  # lime_image's default kernel width

    def kernel(d):
        return np.sqrt(np.exp(-(d ** 2) / width ** 2))

    base = LimeBase(kernel, verbose=False, random_state=np.random.RandomState(seed))
    _, exp, score, _ = base.explain_instance_with_data(z, scores, distances, c, num_features=g,
                                                       feature_selection="none")
    out = np.zeros(g)
    for j, w in exp:
        out[j] = w
    return out, float(score)


def _shap(artifact: Artifact, x: np.ndarray, c: int, groups, baseline, samples: int, seed: int) -> np.ndarray:
    try:
        import shap
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UnsupportedError("SHAP attributions need the shap package: pip install 'edgeseal[privacy]'",
                               reason=str(e)) from None
    g = len(groups)

    def f(z: np.ndarray) -> np.ndarray:
        return _masked_scores(artifact, x, z, groups, baseline)[:, c]

    with _numpy_seed(seed):
        explainer = shap.KernelExplainer(f, np.zeros((1, g)))
        values = explainer.shap_values(np.ones((1, g)), nsamples=samples, silent=True, l1_reg=False)
    return np.asarray(values, np.float64).reshape(-1)[:g]


def attributions(method: Method | str, artifact: Artifact, x: np.ndarray, classes: np.ndarray,
                 groups: Sequence[np.ndarray], baseline: np.ndarray,
                 settings: AttributionSettings = AttributionSettings()) -> tuple[np.ndarray, list[float]]:
    """Attributions ``(n, n_groups)`` of ``classes`` for the inputs ``x``; plus the local-fit R² per input
    for LIME (empty for the other methods). Input ``i`` uses masks seeded with ``settings.seed + i``."""
    method = Method(method)
    x = np.asarray(x, np.float32)
    baseline = np.asarray(baseline, np.float32)
    if method is Method.OCCLUSION:
        return occlusion(artifact, x, classes, list(groups), baseline), []
    rows, fits = [], []
    for i, (xi, c) in enumerate(zip(x, classes)):
        if method is Method.LIME:
            a, r2 = _lime(artifact, xi, int(c), groups, baseline, settings.lime_samples, settings.seed + i)
            fits.append(r2)
        else:
            a = _shap(artifact, xi, int(c), groups, baseline, settings.shap_samples, settings.seed + i)
        rows.append(a)
    return np.stack(rows), fits


@dataclass(frozen=True, kw_only=True)
class AttributionDrift:
    artifact: str
    method: str
    groups: int
    top_k: int
    spearman: list[float]
    topk_overlap: list[float]
    lime_r2: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        s = np.asarray(self.spearman)
        out = {"artifact": self.artifact, "method": self.method, "examples": len(self.spearman),
               "groups": self.groups, "top_k": self.top_k,
               "spearman_mean": float(s.mean()), "spearman_median": float(np.median(s)),
               "spearman_p10": float(np.percentile(s, 10)), "topk_overlap_mean": float(np.mean(self.topk_overlap))}
        if self.lime_r2:
            out["lime_r2_mean"] = float(np.mean(self.lime_r2))
        return out


_TIE_RTOL = 1e-4


def _denoise(a: np.ndarray) -> np.ndarray:
    """Values within 1e-4 of a row's largest |value| become exact zeros (ties). A group that is already at
    the baseline (a blank patch) has attribution 0 for every model; LIME/SHAP regressions return it as
    +-1e-7 noise, whose random order would otherwise count as rank drift."""
    scale = np.abs(a).max(axis=1, keepdims=True)
    return np.where(np.abs(a) <= _TIE_RTOL * scale, 0.0, a)


def map_drift(name: str, method: Method, a_ref: np.ndarray, a_art: np.ndarray, k: int,
              fits: list[float]) -> AttributionDrift:
    """How far the maps ``a_art`` moved from ``a_ref`` (per input: rank correlation, top-``k`` overlap)."""
    k = min(k, a_ref.shape[1])
    a_ref, a_art = _denoise(a_ref), _denoise(a_art)
    rho = [M.spearman(a, b) for a, b in zip(a_ref, a_art)]
    top = [len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k])) / k
           for a, b in zip(a_ref, a_art)]
    return AttributionDrift(artifact=name, method=method.value, groups=int(a_ref.shape[1]), top_k=k,
                            spearman=[float(v) for v in rho], topk_overlap=[float(v) for v in top], lime_r2=fits)


@dataclass(frozen=True, kw_only=True)
class AttributionStudy:
    """Every method's attributions for the reference and each artifact, and the drift of each artifact."""

    methods: tuple[Method, ...]
    classes: np.ndarray
    maps: dict[str, dict[str, np.ndarray]]  # method -> artifact name -> (n, n_groups)
    drift: dict[str, dict[str, AttributionDrift]]  # artifact name -> method -> drift

    def to_dict(self, pictures: int = 0) -> dict:
        """JSON-ready: the drift per artifact and method, and the attributions of the first ``pictures`` inputs."""
        out: dict = {"methods": [m.value for m in self.methods],
                     "drift": {n: {m: d.to_dict() for m, d in per.items()} for n, per in self.drift.items()}}
        if pictures:
            out["pictures"] = {"classes": self.classes[:pictures].tolist(),
                               "maps": {m: {n: np.round(a[:pictures], 6).tolist() for n, a in per.items()}
                                        for m, per in self.maps.items()}}
        return out


def attribution_study(reference: Artifact, artifacts: Sequence[Artifact], x: np.ndarray, *,
                      groups: Sequence[np.ndarray], baseline: np.ndarray,
                      methods: Sequence[Method | str] = tuple(Method),
                      settings: AttributionSettings = AttributionSettings()) -> AttributionStudy:
    """Explain ``x`` with every method on the reference (once) and on each artifact; measure the drift."""
    methods = tuple(Method(m) for m in methods)
    if not methods:
        raise ConfigError("attribution_study needs at least one method (occlusion, lime, shap)")
    names = [a.name for a in artifacts]
    if reference.name in names or len(set(names)) != len(names):
        raise ConfigError(f"artifact names must be distinct from each other and from the reference, got "
                          f"{[reference.name, *names]}")
    x = np.asarray(x, np.float32)
    classes = np.argmax(reference.predict(x), axis=1)
    maps: dict[str, dict[str, np.ndarray]] = {}
    drift: dict[str, dict[str, AttributionDrift]] = {n: {} for n in names}
    for m in methods:
        ref_map, _ = attributions(m, reference, x, classes, groups, baseline, settings)
        maps[m.value] = {reference.name: ref_map}
        for art in artifacts:
            a, fits = attributions(m, art, x, classes, groups, baseline, settings)
            maps[m.value][art.name] = a
            drift[art.name][m.value] = map_drift(art.name, m, ref_map, a, settings.top_k, fits)
    return AttributionStudy(methods=methods, classes=classes, maps=maps, drift=drift)


def group_map(values: Sequence[float], groups: Sequence[np.ndarray], n_features: int,
              image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Per-feature picture of group attributions: every feature of group ``j`` shows ``values[j]``
    (reshaped to ``image_shape`` for images; a 1 x n_features strip otherwise)."""
    out = np.zeros(n_features)
    for v, cols in zip(values, groups):
        out[np.asarray(cols)] = v
    return out.reshape(image_shape) if image_shape else out.reshape(1, -1)
