"""The one latency harness: interleaved order, percentiles and ratios checked against known costs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.timing import Latency, interleaved, latency, rotation


class FakeClock:
    """A clock that only moves when a candidate runs: each call costs ``cost[name] * slowdown(calls so far)``."""

    def __init__(self, cost, slowdown=lambda n: 1.0):
        self.now, self.calls, self.cost, self.slowdown, self.log = 0.0, 0, cost, slowdown, []

    def __call__(self) -> float:
        return self.now

    def candidate(self, name):
        def call():
            self.log.append(name)
            self.now += self.cost[name] * self.slowdown(self.calls)
            self.calls += 1
        return call


def test_turns_rotate_one_candidate_per_round_after_warmup_and_settle():
    clock = FakeClock({"a": 1.0, "b": 1.0, "c": 1.0})
    interleaved({n: clock.candidate(n) for n in "abc"}, rounds=4, calls_per_round=2, warmup=3, settle=1, clock=clock)
    expected = ["a"] * 3 + ["b"] * 3 + ["c"] * 3  # warmup, each candidate in turn
    for order in (["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]):
        for n in order:
            expected += [n] * (1 + 2)  # one settling call, then two timed calls
    assert clock.log == expected
    assert rotation(["a", "b", "c"], 5) == ["c", "a", "b"]


def test_percentiles_and_ratio_are_exact_for_known_costs():
    clock = FakeClock({"base": 0.004, "fast": 0.001, "slow": 0.010})
    speed = interleaved({n: clock.candidate(n) for n in ("base", "fast", "slow")}, baseline="base", rounds=5,
                        calls_per_round=4, warmup=0, clock=clock)
    assert speed.latency["fast"].p50_ms == pytest.approx(1.0) and speed.latency["fast"].p90_ms == pytest.approx(1.0)
    assert speed.latency["slow"].runs == 20 and speed.latency["slow"].mean_ms == pytest.approx(10.0)
    assert speed.ratio == pytest.approx({"base": 1.0, "fast": 4.0, "slow": 0.4})
    assert speed.describe("fast").startswith("4.00x faster than base")
    assert speed.describe("slow").startswith("2.50x slower than base")
    assert speed.ratios_to("fast") == pytest.approx({"base": 0.25, "fast": 1.0, "slow": 0.1})  # same rounds
    with pytest.raises(ConfigError, match="'nope' was not timed here"):
        speed.ratios_to("nope")


def test_a_machine_that_slows_down_midway_does_not_bias_the_ratio():
    """The machine gets 3x slower after half the calls. Timed one after the other, the later candidate would look
    3x slower than it is; interleaved, each round's ratio compares candidates under the same conditions."""
    rounds, per = 10, 5
    total = 2 * rounds * per
    clock = FakeClock({"a": 0.002, "b": 0.002}, slowdown=lambda n: 1.0 if n < total // 2 else 3.0)
    speed = interleaved({"a": clock.candidate("a"), "b": clock.candidate("b")}, baseline="a", rounds=rounds,
                        calls_per_round=per, warmup=0, settle=0, clock=clock)
    assert speed.ratio["b"] == pytest.approx(1.0)
    # the same costs timed in two separate runs: the second lands in the slow half
    seq = FakeClock({"a": 0.002, "b": 0.002}, slowdown=lambda n: 1.0 if n < total // 2 else 3.0)
    first = interleaved({"a": seq.candidate("a")}, rounds=rounds, calls_per_round=per, warmup=0, settle=0, clock=seq)
    second = interleaved({"b": seq.candidate("b")}, rounds=rounds, calls_per_round=per, warmup=0, settle=0, clock=seq)
    assert first.latency["a"].p50_ms / second.latency["b"].p50_ms == pytest.approx(1 / 3)


def test_ratio_of_real_sleeps_is_recovered():
    """An independent measurement: candidates that sleep a known time; the ratio comes back within tolerance."""
    speed = interleaved({"base": lambda: time.sleep(0.008), "quick": lambda: time.sleep(0.002)}, baseline="base",
                        rounds=6, calls_per_round=5, warmup=2)
    assert 2.6 < speed.ratio["quick"] < 4.2  # (8 + c) / (2 + c): 4 for exact sleeps, less as each sleep overshoots by c
    assert speed.latency["base"].p50_ms >= 8.0 and speed.latency["quick"].p50_ms >= 2.0  # sleep never undershoots


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="baseline 'x' is not among"):
        interleaved({"a": lambda: None}, baseline="x")
    with pytest.raises(ConfigError, match="nothing to time"):
        interleaved({})
    with pytest.raises(ConfigError, match="rounds"):
        interleaved({"a": lambda: None}, rounds=0)
    with pytest.raises(ConfigError, match="no timed calls"):
        latency([])
    lat = latency([0.001] * 9 + [0.011])
    assert isinstance(lat, Latency) and lat.p50_ms == pytest.approx(1.0) and lat.p90_ms == pytest.approx(2.0)
    assert lat.mean_ms == pytest.approx(2.0) and lat.runs == 10
    assert np.isclose(lat.p95_ms, 6.5)
