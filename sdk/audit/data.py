"""Audit datasets and the recorded member / non-member split.

Only datasets that ship inside scikit-learn (no downloads): ``breast_cancer``
(569 tabular records, 30 features, standardized) and ``digits`` (1797 8x8
images scaled to [0, 1]). The split puts half of the records, drawn with the
split seed, into the target model's training set (members); the rest are
non-members and double as the held-out test set for accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgeseal.runtime.errors import ConfigError

__all__ = ["DatasetName", "Dataset", "Split", "load_dataset", "member_split", "subsample"]


class DatasetName(str, Enum):
    BREAST_CANCER = "breast_cancer"
    DIGITS = "digits"


@dataclass(frozen=True, kw_only=True)
class Dataset:
    name: str
    x: np.ndarray  # float32, (n, d)
    y: np.ndarray  # int64, (n,)
    n_classes: int
    lo: float | None  # valid input range used to clip adversarial inputs (None: unbounded)
    hi: float | None
    image_shape: tuple[int, int] | None  # for patch occlusion and plots

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True, kw_only=True)
class Split:
    """Which records trained the target (members) and which did not (non-members)."""

    seed: int
    members: np.ndarray
    nonmembers: np.ndarray

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "n_members": int(self.members.size),
            "n_nonmembers": int(self.nonmembers.size),
            "members": self.members.tolist(),
            "nonmembers": self.nonmembers.tolist(),
        }


def load_dataset(name: DatasetName | str) -> Dataset:
    from sklearn import datasets

    name = DatasetName(name)
    if name is DatasetName.BREAST_CANCER:
        x, y = datasets.load_breast_cancer(return_X_y=True)
        # Standardized with statistics of the whole pool: these are public facts
        # about the population, not about who is a member.
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        return Dataset(name=name.value, x=x.astype(np.float32), y=y.astype(np.int64), n_classes=2,
                       lo=None, hi=None, image_shape=None)
    x, y = datasets.load_digits(return_X_y=True)
    return Dataset(name=name.value, x=(x / 16.0).astype(np.float32), y=y.astype(np.int64), n_classes=10,
                   lo=0.0, hi=1.0, image_shape=(8, 8))


def member_split(n: int, *, seed: int, member_fraction: float = 0.5) -> Split:
    if not 0.0 < member_fraction < 1.0:
        raise ConfigError(f"member_fraction must be in (0, 1), got {member_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * member_fraction))
    return Split(seed=seed, members=np.sort(perm[:k]), nonmembers=np.sort(perm[k:]))


def subsample(ds: Dataset, size: int | None, *, seed: int) -> tuple[Dataset, np.ndarray]:
    """A random pool of ``size`` records (all when ``size`` is None or too large) and their indices."""
    import dataclasses

    n = len(ds.y)
    if size is None or size >= n:
        return ds, np.arange(n)
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:size])
    return dataclasses.replace(ds, x=ds.x[idx], y=ds.y[idx]), idx
