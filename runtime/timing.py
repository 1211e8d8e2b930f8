"""The one latency harness: candidates timed interleaved in one run, reported as percentiles and ratios.

Timing two models in two separate runs on a shared or throttling machine gives ratios that
flip sign from run to run (one pruned model measured 2.98x faster in one run and 1.96x slower
in another; interleaved, it was 1.18x faster). :func:`interleaved` therefore times every
candidate in the same run: after ``warmup`` untimed calls each, it runs ``rounds`` rounds; in
each round every candidate takes one turn — ``settle`` untimed calls that bring it back into
the caches, then ``calls_per_round`` timed calls — in an order that rotates by one candidate per
round, so whatever else the machine does meanwhile falls on all of them alike.

Per candidate it reports the p50/p90/p95/mean of every timed call; against the named
``baseline`` it reports the speed ratio: the median over rounds of ``baseline / candidate``
(each round's median call time; > 1 means faster than the baseline) with the 25th-75th
percentile of those per-round ratios. Everything a report says about speed comes from here
(``edgeseal.converters.latency`` builds the calls for model files). numpy only: it runs on a device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["Latency", "SideBySide", "interleaved", "latency", "rotation"]


@dataclasses.dataclass(frozen=True)
class Latency:
    """Wall-clock latency of one call, in milliseconds (percentiles over ``runs`` timed calls)."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    runs: int
    p90_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def latency(seconds: Sequence[float]) -> Latency:
    """Percentiles of call times given in seconds."""
    if not len(seconds):
        raise ConfigError("no timed calls to summarize; time at least one call")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p95 = (float(v) for v in np.percentile(ms, [50, 90, 95]))
    return Latency(p50_ms=p50, p95_ms=p95, mean_ms=float(ms.mean()), runs=int(ms.size), p90_ms=p90)


@dataclasses.dataclass(frozen=True)
class SideBySide:
    """Per-candidate latency and speed ratio to ``baseline`` from one interleaved run."""

    baseline: str
    latency: dict[str, Latency]
    ratio: dict[str, float]  # baseline time / candidate time: > 1 faster than the baseline, < 1 slower
    ratio_iqr: dict[str, tuple[float, float]]  # 25th and 75th percentile of the per-round ratios
    rounds: int
    calls_per_round: int
    timed: str  # what exactly was timed
    round_medians: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict, repr=False)  # seconds

    def ratios_to(self, other: str) -> dict[str, float]:
        """Speed ratios to another candidate than ``baseline``, from the same rounds: median of ``other / candidate``."""
        if other not in self.round_medians:
            raise ConfigError(f"{other!r} was not timed here; candidates: {list(self.round_medians)}")
        base = np.asarray(self.round_medians[other])
        return {n: float(np.median(base / np.maximum(np.asarray(v), 1e-12))) for n, v in self.round_medians.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "latency": {k: v.to_dict() for k, v in self.latency.items()},
            "speed_ratio": dict(self.ratio),
            "speed_ratio_iqr": {k: list(v) for k, v in self.ratio_iqr.items()},
            "rounds": self.rounds,
            "calls_per_round": self.calls_per_round,
            "timed": self.timed,
        }

    def describe(self, name: str) -> str:
        r = self.ratio[name]
        lo, hi = self.ratio_iqr[name]
        word = "faster" if r >= 1 else "slower"
        factor = r if r >= 1 else 1 / r
        return f"{factor:.2f}x {word} than {self.baseline} (per-round ratio {lo:.2f}-{hi:.2f})"


def rotation(names: Sequence[str], round_index: int) -> list[str]:
    """The order of the candidates' turns in round ``round_index``: ``names`` rotated left by the round number."""
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


def interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    baseline: str | None = None,
    rounds: int = 30,
    calls_per_round: int = 10,
    warmup: int = 20,
    settle: int = 1,
    timed: str = "",
    progress: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> SideBySide:
    """Time every zero-argument call in ``calls`` interleaved (see the module doc) and compare each with ``baseline``
    (default: the first). Prepare inputs before: only the call itself is timed. ``progress()`` runs once per round."""
    names = list(calls)
    if not names:
        raise ConfigError("nothing to time: give at least one candidate")
    baseline = names[0] if baseline is None else baseline
    if baseline not in calls:
        raise ConfigError(f"baseline {baseline!r} is not among the candidates {names}")
    if rounds < 1 or calls_per_round < 1 or warmup < 0 or settle < 0:
        raise ConfigError(f"rounds ({rounds}) and calls_per_round ({calls_per_round}) must be >= 1, "
                          f"warmup ({warmup}) and settle ({settle}) >= 0")
    for n in names:
        for _ in range(warmup):
            calls[n]()
    per_call: dict[str, list[float]] = {n: [] for n in names}
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in rotation(names, r):
            fn = calls[n]
            for _ in range(settle):
                fn()
            times = []
            for _ in range(calls_per_round):
                t0 = clock()
                fn()
                times.append(clock() - t0)
            per_call[n] += times
            per_round[n].append(float(np.median(times)))
        if progress is not None:
            progress()
    base = np.asarray(per_round[baseline])
    lat, ratio, iqr = {}, {}, {}
    for n in names:
        lat[n] = latency(per_call[n])
        rr = base / np.maximum(np.asarray(per_round[n]), 1e-12)
        ratio[n] = float(np.median(rr))
        iqr[n] = (float(np.percentile(rr, 25)), float(np.percentile(rr, 75)))
    return SideBySide(baseline, lat, ratio, iqr, rounds, calls_per_round, timed or "the given calls",
                      {n: tuple(v) for n, v in per_round.items()})
