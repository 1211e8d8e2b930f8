"""Attribution drift on colour image crops: occlusion, LIME and SHAP of an fp32 image classifier vs
each of its compressed artifacts (e.g. EfficientNet-Lite0 at 3 x 224 x 224, int8 and pruned).

A 224 x 224 x 3 crop has 150,528 pixels; LIME and SHAP cannot perturb them one by one. As
``lime_image`` does, they switch *superpixels* on and off; here the superpixels are a fixed grid of
``patch x patch`` squares (every channel of a square in one group: 32-pixel squares give 7 x 7 = 49
groups), the same for every crop and every model, so two models' maps compare cell by cell. A
switched-off square takes the baseline, 0 in the model's normalised input space (the dataset mean
colour: a flat grey square for ImageNet normalisation).

Everything is black-box (:mod:`.attribution`): only ``predict`` of the reference and of each
artifact is called, with the same random masks for both (seed ``settings.seed + i`` for crop
``i``), explaining the fp32 model's top-1 class on each crop. On top of the drift per artifact and
method, :func:`explain_crops` measures two things a reader needs to judge the drift:

* the *noise floor*: the fp32 reference explained again with other masks (seed + ``reseed``), vs
  itself. LIME and SHAP estimate from a few hundred samples; an artifact whose ρ is near the
  floor has not moved beyond the sampling error of the method (occlusion is exact: no floor);
* per crop, each artifact's own top-1 class and the rank it gives the fp32 class: an artifact that
  no longer picks that class is explained on a question it no longer answers.

Model calls, wall time per model, samples and seeds are recorded in :meth:`CropExplanation.to_dict`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .attribution import AttributionSettings, AttributionStudy, Method, attribution_study, attributions, map_drift
from .explain import feature_groups

__all__ = ["CropExplanation", "explain_crops"]


class _Timed:
    """A black-box artifact that adds up the wall time and rows of its ``predict`` calls."""

    def __init__(self, inner: Any, shape: tuple[int, ...]) -> None:
        self.inner, self.shape, self.name = inner, shape, inner.name
        self.seconds, self.calls = 0.0, 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = self.inner.predict(np.asarray(x, np.float32).reshape(len(x), *self.shape))
        self.seconds += time.perf_counter() - t
        self.calls += len(x)
        return np.asarray(out, np.float64).reshape(len(x), -1)


@dataclass(frozen=True, kw_only=True)
class CropExplanation:
    """The study on the crops, with the facts needed to read it (see the module doc)."""

    image_shape: tuple[int, int, int]
    patch: int
    settings: AttributionSettings
    reseed: int
    reference: str
    names: list[str]  # one per crop (e.g. the photo it was cut from)
    class_names: list[str]  # the fp32 class of each crop, as a name
    probabilities: list[float]  # the fp32 softmax probability of that class
    artifact_top1: dict[str, list[int]]  # artifact -> its own top-1 class per crop
    artifact_rank: dict[str, list[int]]  # artifact -> rank (1 = top) it gives the fp32 class, per crop
    artifact_top1_names: dict[str, list[str]]  # the same top-1 classes as names
    study: AttributionStudy
    noise_floor: dict[str, Any]  # method -> drift dict of fp32 vs fp32 with other masks (LIME, SHAP)
    seconds: dict[str, float]  # model -> wall seconds spent in its predict
    calls: dict[str, int]  # model -> rows predicted
    wall_s: float

    @property
    def groups(self) -> list[np.ndarray]:
        return feature_groups(int(np.prod(self.image_shape)), self.image_shape, self.patch)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; every number of the rendered reports comes from here (inputs are not stored:
        the crops are reproducible from their source and seed, which the caller records)."""
        study = self.study.to_dict(pictures=len(self.names))
        return {
            "image_shape": list(self.image_shape), "patch": self.patch, "groups": len(self.groups),
            "grid": [-(-self.image_shape[1] // self.patch), -(-self.image_shape[2] // self.patch)],  # ceil: edge squares
            "baseline": "0 in the model's normalised input space (the normalisation mean colour)",
            "methods": study["methods"],
            "settings": dataclasses.asdict(self.settings), "mask_seeds": [self.settings.seed + i
                                                                        for i in range(len(self.names))],
            "noise_floor_reseed": self.reseed,
            "reference": self.reference, "artifacts": list(self.artifact_top1),
            "crops": [{"name": n, "fp32_class": int(c), "fp32_class_name": cn, "fp32_probability": p,
                       "artifacts": {a: {"top1": self.artifact_top1[a][i], "top1_name": self.artifact_top1_names[a][i],
                                         "rank_of_fp32_class": self.artifact_rank[a][i]}
                                     for a in self.artifact_top1}}
                      for i, (n, c, cn, p) in enumerate(zip(self.names, self.study.classes, self.class_names,
                                                            self.probabilities))],
            "agreement": {a: float(np.mean(np.asarray(t) == self.study.classes)) for a, t in self.artifact_top1.items()},
            "drift": study["drift"], "noise_floor": self.noise_floor,
            "per_crop": {a: {m: {"spearman": d.spearman, "topk_overlap": d.topk_overlap} for m, d in per.items()}
                         for a, per in self.study.drift.items()},
            "maps": study["pictures"]["maps"],
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()}, "model_calls": dict(self.calls),
            "wall_s": round(self.wall_s, 1),
        }


def explain_crops(reference: Any, artifacts: Sequence[Any], crops: np.ndarray, *, patch: int = 32,
                  methods: Sequence[Method | str] = tuple(Method),
                  settings: AttributionSettings = AttributionSettings(), names: Sequence[str] | None = None,
                  class_names: Sequence[str] | None = None, reseed: int = 1000) -> CropExplanation:
    """Explain the fp32 top-1 class of each channel-first crop ``(n, c, h, w)`` with every method on
    ``reference`` and on each artifact (black-box ``predict`` of ``(batch, c, h, w)`` arrays); measure
    drift, the noise floor (fp32 vs fp32 with masks seeded ``reseed`` higher) and each artifact's top-1."""
    crops = np.asarray(crops, np.float32)
    if crops.ndim != 4:
        raise ConfigError(f"crops must be channel-first images (n, c, h, w), got shape {crops.shape}")
    if not 1 <= patch <= min(crops.shape[2:]):
        raise ConfigError(f"patch={patch} must be between 1 and the crop's side {min(crops.shape[2:])}")
    n, shape = crops.shape[0], tuple(int(v) for v in crops.shape[1:])
    names = list(names) if names is not None else [f"crop {i}" for i in range(n)]
    if len(names) != n:
        raise ConfigError(f"names has {len(names)} entries for {n} crops")
    if reseed < n:
        raise ConfigError(f"reseed={reseed} must be >= the number of crops ({n}) so no crop reuses another's masks")
    t0 = time.perf_counter()
    ref = _Timed(reference, shape)
    arts = [_Timed(a, shape) for a in artifacts]
    x = crops.reshape(n, -1)
    groups = feature_groups(x.shape[1], shape, patch)
    baseline = np.zeros(x.shape[1], np.float32)
    z_ref = ref.predict(x)
    classes = np.argmax(z_ref, axis=1)
    p = np.exp(z_ref - z_ref.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top1, rank = {}, {}
    for a in arts:
        z = a.predict(x)
        top1[a.name] = [int(v) for v in np.argmax(z, axis=1)]
        rank[a.name] = [int(1 + np.sum(row > row[c])) for row, c in zip(z, classes)]
    study = attribution_study(ref, arts, x, groups=groups, baseline=baseline, methods=methods, settings=settings)
    floor: dict[str, Any] = {}
    other = dataclasses.replace(settings, seed=settings.seed + reseed)
    for m in study.methods:
        if m is Method.OCCLUSION:  # deterministic: the same maps again
            continue
        again, fits = attributions(m, ref, x, study.classes, groups, baseline, other)
        floor[m.value] = map_drift(f"{reference.name} (masks seed +{reseed})", m, study.maps[m.value][ref.name], again,
                                settings.top_k, fits).to_dict()
    labels = list(class_names) if class_names is not None else None

    def name(c: int) -> str:
        return labels[c] if labels else str(int(c))

    return CropExplanation(
        image_shape=shape, patch=patch, settings=settings, reseed=reseed, reference=ref.name, names=names,
        class_names=[name(c) for c in classes],
        probabilities=[float(p[i, c]) for i, c in enumerate(classes)], artifact_top1=top1, artifact_rank=rank,
        artifact_top1_names={a: [name(c) for c in t] for a, t in top1.items()},
        study=study, noise_floor=floor, seconds={m.name: m.seconds for m in (ref, *arts)},
        calls={m.name: m.calls for m in (ref, *arts)}, wall_s=time.perf_counter() - t0)
