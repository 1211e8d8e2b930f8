"""Latency of several model files measured side by side, in one run, reported as ratios.

The harness is :mod:`edgeseal.runtime.timing` (candidates interleaved in a rotating order, p50/p90
per candidate, speed ratios to a named baseline). This module builds its calls for model bytes:
each model gets the runtime's own backend session (``converters.infer``, the code that runs a
sealed model on the device), its input is prepared before timing (a full-integer model's input is
quantized with the model's own scale, ``runtime.quantio.quantize``), and only the backend call is
timed: ``Session.run(feeds)`` — ONNX Runtime ``run`` / LiteRT ``set_tensor`` + ``invoke`` +
``get_tensor``. Batch 1, one thread unless told otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.timing import Latency, SideBySide, interleaved

Input = Union[np.ndarray, Mapping[str, np.ndarray]]

__all__ = ["Latency", "SideBySide", "time_side_by_side", "timed_call"]


def timed_call(model: bytes, x: Input | Sequence[Input], *, threads: int = 1) -> Callable[[], Any]:
    """A zero-argument call that runs ``model`` once on ``x`` (a batch of the first input, or a dict of named
    inputs) through its backend session; all input preparation (float -> int8 for a full-integer model)
    happens here, not in it. Given a list of inputs, the k-th call takes input ``k mod len``: candidates
    that get the same number of calls (as in :func:`edgeseal.runtime.timing.interleaved`) run the same inputs
    in the same rounds."""
    from .infer import runner_for

    runner = runner_for(model, threads=threads)
    many = isinstance(x, list)
    prepared = [runner.backend_feeds(_input(v)) for v in (x if many else [x])]
    if not prepared:
        raise ConfigError("no input to time the model on: give an array, a dict of named inputs, or a list of them")
    session = runner.backend
    session.run(prepared[0])  # a first call: any resize for this batch happens here, and a bad input fails here
    feeds = prepared[0]
    turn = itertools.cycle(prepared)

    def call() -> Any:
        return session.run(next(turn) if many else feeds)

    call.runner = runner  # keeps the session (and the model buffer it reads) alive with the call
    call.feeds = prepared if many else feeds  # what the backend is given, prepared before any timing
    return call


def _input(v: Any) -> Any:
    return v if isinstance(v, Mapping) else np.asarray(v)


def time_side_by_side(
    models: Mapping[str, bytes],
    x: Input | Sequence[Input],
    *,
    baseline: str,
    rounds: int = 30,
    calls_per_round: int = 10,
    warmup: int = 20,
    threads: int = 1,
    progress: Callable[[], None] | None = None,
) -> SideBySide:
    """Time every model on the same input ``x`` (batch 1: an array, or a dict of named inputs; or a list of
    them, taken in turn alike by every model), interleaved, and compare each with ``baseline``."""
    if baseline not in models:
        raise KeyError(f"baseline {baseline!r} is not among the models {list(models)}")
    calls = {n: timed_call(m, x, threads=threads) for n, m in models.items()}
    one = x[0] if isinstance(x, list) and x else x
    first = next(iter(one.values())) if isinstance(one, Mapping) else one
    batch = len(first) if np.ndim(first) else 1
    timed = (f"batch {batch}, {threads} thread{'s' if threads != 1 else ''}; the runtime backend session's run() "
             "with prepared feeds (ONNX Runtime run / LiteRT set_tensor+invoke+get_tensor; int8 inputs quantized "
             "before timing); candidates interleaved in rotating order")
    return interleaved(calls, baseline=baseline, rounds=rounds, calls_per_round=calls_per_round, warmup=warmup,
                       timed=timed, progress=progress)
