"""Mask sensitive columns or pixels of a data set before it leaves the host.

A data set sent to a device for evaluation (``edgeseal seal data.npz --dataset``)
is encrypted for that device, but the device decrypts it to run the model: whoever
controls the device can read it. Masking removes what the evaluation does not
need *before* sealing, so it never leaves the host at all:

- ``columns``: feature indices (of the flattened per-sample shape; for a table,
  the column) of an array, e.g. a patient's age or postcode;
- ``pixels``: a boolean mask of the per-sample shape (True = sensitive), e.g.
  a face or a name tag region in every image;
- ``drop``: whole arrays, e.g. record ids.

Masked entries take ``fill``: a number (default 0), or ``"mean"`` (each masked
feature's mean over the samples: the model still sees a typical value; the
individual values are gone, the population mean is not). The sealed manifest
records *which* features were masked (names and counts, never values) in its
``masking`` metadata, so a report can say so. Masking changes what the model
sees: measure its accuracy on the masked set (``edgeseal verify`` does).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .runtime.errors import ConfigError
from .runtime.evaluate import read_npz  # re-exported: the one .npz reader

__all__ = ["MaskConfig", "mask_arrays", "prepare_dataset", "read_npz", "write_npz"]


@dataclass(frozen=True, kw_only=True)
class MaskConfig:
    columns: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    pixels: Mapping[str, Any] = field(default_factory=dict)  # array name -> bool array of the per-sample shape
    drop: tuple[str, ...] = ()
    fill: float | str = 0.0

    def __post_init__(self) -> None:
        cols = {}
        for name, idx in dict(self.columns).items():
            try:
                cols[str(name)] = tuple(sorted({int(i) for i in idx}))
            except (TypeError, ValueError):
                raise ConfigError(f"mask columns of {name!r} must be integer indices, got {idx!r}") from None
            if not cols[str(name)]:
                raise ConfigError(f"mask columns of {name!r} is empty; name at least one column")
        object.__setattr__(self, "columns", cols)
        pix = {}
        for name, m in dict(self.pixels).items():
            m = np.asarray(m)
            if m.dtype != bool:
                raise ConfigError(f"pixel mask of {name!r} must be a boolean array (True = sensitive), got {m.dtype}")
            pix[str(name)] = m
        object.__setattr__(self, "pixels", pix)
        object.__setattr__(self, "drop", tuple(str(d) for d in self.drop))
        if isinstance(self.fill, str):
            if self.fill != "mean":
                try:
                    object.__setattr__(self, "fill", float(self.fill))
                except ValueError:
                    raise ConfigError(f"mask fill must be a number or 'mean', got {self.fill!r}") from None
        elif not np.isfinite(float(self.fill)):
            raise ConfigError(f"mask fill must be finite, got {self.fill!r}")
        overlap = set(self.drop) & (set(self.columns) | set(self.pixels))
        if overlap:
            raise ConfigError(f"arrays {sorted(overlap)} are both dropped and masked; choose one")

    @property
    def empty(self) -> bool:
        return not (self.columns or self.pixels or self.drop)

    @classmethod
    def from_cli(cls, *, columns: Iterable[str] = (), pixels: Iterable[str] = (), drop: Iterable[str] = (),
                 fill: str = "0") -> "MaskConfig":
        """From ``ARRAY:0,3,5-7`` column lists and ``ARRAY:mask.npy`` pixel-mask files."""
        cols: dict[str, list[int]] = {}
        for spec in columns:
            name, _, rest = spec.partition(":")
            if not name or not rest:
                raise ConfigError(f"--mask-columns {spec!r}: write ARRAY:COLUMNS, e.g. x:0,3,5-7")
            for part in rest.split(","):
                lo, dash, hi = part.strip().partition("-")
                try:
                    cols.setdefault(name, []).extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
                except ValueError:
                    raise ConfigError(f"--mask-columns {spec!r}: {part!r} is not a column index or a range a-b") from None
        pix: dict[str, np.ndarray] = {}
        for spec in pixels:
            name, _, path = spec.partition(":")
            if not name or not path:
                raise ConfigError(f"--mask-pixels {spec!r}: write ARRAY:MASK.npy (a boolean array of one sample's shape)")
            try:
                pix[name] = np.load(Path(path), allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"--mask-pixels {spec!r}: cannot read {path} as a .npy array ({exc})") from None
        return cls(columns={k: tuple(v) for k, v in cols.items()}, pixels=pix, drop=tuple(drop), fill=fill)


def write_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _need(arrays: Mapping[str, np.ndarray], name: str, what: str) -> np.ndarray:
    if name not in arrays:
        raise ConfigError(f"{what}: the data set has no array {name!r}; it has {sorted(arrays)}")
    a = arrays[name]
    if a.ndim < 2:
        raise ConfigError(f"{what}: array {name!r} has shape {a.shape}; masking needs (samples, features...)")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ConfigError(f"{what}: array {name!r} is {a.dtype}, not numeric; drop it instead (--drop {name})")
    return a


def mask_arrays(arrays: Mapping[str, np.ndarray], config: MaskConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The masked arrays (new arrays; the input is not modified) and a summary without any values."""
    out = dict(arrays)
    summary: dict[str, Any] = {"fill": config.fill if isinstance(config.fill, str) else float(config.fill),
                               "arrays": {}, "dropped": []}
    for name in config.drop:
        if name not in out:
            raise ConfigError(f"--drop {name}: the data set has no array {name!r}; it has {sorted(arrays)}")
        del out[name]
        summary["dropped"].append(name)
    for name in sorted(set(config.columns) | set(config.pixels)):
        a = _need(arrays, name, "mask")
        per_sample = a.shape[1:]
        flat = np.zeros(int(np.prod(per_sample)), bool)
        if name in config.columns:
            idx = np.asarray(config.columns[name])
            if idx.min() < 0 or idx.max() >= flat.size:
                raise ConfigError(f"mask columns of {name!r} must be in [0, {flat.size - 1}], got {idx.min()}..{idx.max()}")
            flat[idx] = True
        if name in config.pixels:
            m = config.pixels[name]
            if m.shape != per_sample and m.size != flat.size:
                raise ConfigError(f"pixel mask of {name!r} has shape {m.shape}; one sample of {name!r} is {per_sample}")
            flat |= m.reshape(-1)
        x = a.reshape(a.shape[0], -1).copy()
        if config.fill == "mean":
            fill = x[:, flat].astype(np.float64).mean(axis=0)
        else:
            fill = np.full(int(flat.sum()), float(config.fill))
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            fill = np.clip(np.round(fill), info.min, info.max)
        x[:, flat] = fill.astype(x.dtype)
        out[name] = x.reshape(a.shape)
        summary["arrays"][name] = {"masked_features": int(flat.sum()), "features": int(flat.size)}
    return out, summary


def prepare_dataset(data: bytes, mask: MaskConfig | None) -> tuple[bytes, dict[str, Any] | None]:
    """Check that ``data`` is an ``.npz`` and apply ``mask``; returns the bytes to seal and the summary."""
    arrays = read_npz(data)
    if mask is None or mask.empty:
        return data, None
    masked, summary = mask_arrays(arrays, mask)
    if not masked:
        raise ConfigError("masking dropped every array; nothing is left to seal")
    return write_npz(masked), summary


def summary_text(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, sort_keys=True, separators=(",", ":"))
