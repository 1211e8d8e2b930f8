"""``edgeseal search``: try compression configurations and keep the Pareto front that meets a budget.

    >>> import edgeseal.search as es
    >>> report = es.search("recipe.toml", "search.toml")          # or SearchConfig(...) objects
    >>> print(report.render())
    >>> report.write("out/search")        # search.json, pareto.png, search.html, front/*.onnx

Each trial derives a compress recipe from the base recipe (``search_space.trial_recipe``:
structured pruning ratio, distillation on/off, int8 scheme, calibration, layers
kept in float), runs ``edgeseal.compress`` on a fresh copy of the fp32 model and
measures size, validation and test accuracy and latency. Trials run in local
worker processes (one thread each) or as Ray tasks (``ray=``). Afterwards the
driver re-measures the latency of every budget candidate side by side in one run
(``edgeseal.runtime.timing``: interleaved turns in a rotating order), and
the front — points no other point beats on size, latency and validation accuracy
at once — is computed among the points that meet the budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from ..compress.recipe import CompressRecipe, load_recipe
from .executors import TrialInputs, run_local, run_ray
from .report import SearchReport, TrialResult
from .space import (
    Budget,
    Scheme,
    SearchConfig,
    SearchSpace,
    TrialConfig,
    check_base_recipe,
    choose_trials,
    grid,
    load_search,
)

__all__ = [
    "search",
    "pareto_front",
    "dominates",
    "remeasure_latency",
    "digits_recipe",
    "prepare_digits",
    "SearchConfig",
    "SearchSpace",
    "Budget",
    "Scheme",
    "TrialConfig",
    "SearchReport",
    "TrialResult",
    "load_search",
    "add_parser",
]

Point = tuple[float, float, float]  # (size bytes, latency ms, accuracy): smaller, smaller, larger is better


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on size, latency and accuracy, and strictly better on one."""
    no_worse = a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2]
    return no_worse and (a[0] < b[0] or a[1] < b[1] or a[2] > b[2])


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (equal points are all kept), in input order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def remeasure_latency(models: dict[int, bytes], sample: np.ndarray, *, runs: int = 300, turn: int = 10,
                      progress: Callable[[], None] | None = None) -> dict[int, float]:
    """p50 latency (ms) of each model at batch 1 on one ONNX Runtime thread, measured side by side.

    The models take turns of ``turn`` timed calls (after one untimed call that brings the model back into
    the caches) in a rotating order, ``runs / turn`` rounds in all, so whatever else the machine does
    meanwhile (other processes, a busy sibling hyperthread, clock changes) falls on all of them alike.
    ``progress()`` is called once per round. The harness is ``edgeseal.runtime.timing``; only the backend
    session's run is timed, with the input prepared before.
    """
    from edgeseal.converters.latency import timed_call
    from edgeseal.runtime.timing import interleaved

    if not models:
        return {}
    one = np.ascontiguousarray(sample[:1], dtype=np.float32)
    calls = {k: timed_call(m, one, threads=1) for k, m in models.items()}  # the one harness, backend calls only
    speed = interleaved(calls, rounds=latency_rounds(runs, turn), calls_per_round=turn, warmup=20, settle=1,
                        progress=progress)
    return {k: speed.latency[k].p50_ms for k in models}


def latency_rounds(runs: int, turn: int) -> int:
    return max(1, -(-runs // turn))


# --------------------------------------------------------------------------- the driver


def _xy(value: Any, what: str, data: Any) -> tuple[np.ndarray, np.ndarray] | None:
    from ..compress.core import read_split

    x, y = read_split(value, what, data)
    if x is None:
        return None
    if y is None:
        raise ConfigError(f"the {what} data has no labels; give an .npz with x and y")
    return x, y


def _state_dict_bytes(model: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def _inputs(recipe: CompressRecipe, config: SearchConfig, model: Any, train: Any, calibration: Any, validation: Any,
            test: Any) -> TrialInputs:
    import torch

    from ..compress.core import load_model, read_split

    if recipe.model.factory is None:
        raise ConfigError("search rebuilds the model in every worker from the recipe's [model] factory; give "
                          "factory = 'module:callable' (and state_dict) — TorchScript/torch.export files cannot be pruned")
    if model is None:
        model = load_model(None, factory=recipe.model.factory, state_dict=recipe.model.state_dict)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module built by the recipe's factory, got {type(model).__name__}")
    val = _xy(validation if validation is not None else (config.validation or recipe.data.eval), "validation",
              recipe.data)
    if val is None:
        raise ConfigError("search judges accuracy on a validation split: give [data] eval in the recipe, "
                          "validation = 'val.npz' in the search file, or --validation")
    train_xy = _xy(train if train is not None else recipe.data.train, "train", recipe.data)
    if train_xy is None and any(r > 0 for r in config.space.prune_ratio):
        raise ConfigError("pruned trials are fine-tuned: give labelled train data ([data] train in the recipe), "
                          "or search prune_ratio = [0.0] only")
    cal = read_split(calibration if calibration is not None else recipe.data.calibration, "calibration", recipe.data)[0]
    if cal is None:
        cal = train_xy[0] if train_xy is not None else val[0]
    test_xy = _xy(test if test is not None else config.test, "test", recipe.data)
    return TrialInputs(recipe=recipe, budget=config.budget, state_dict=_state_dict_bytes(model), train=train_xy,
                       calibration=cal, validation=val, test=test_xy)


def _trial_line(t: TrialResult) -> str:
    where = t.where.get("node_ip") or t.where.get("host", "?")
    if not t.ok:
        return f"[red]x[/] #{t.id} {t.config.label()}: {t.error}"
    if t.where.get("executor") == "cache":
        return (f"[green]v[/] #{t.id} {t.config.label()}: {t.size_bytes / 1024:.1f} KiB, val "
                f"{100 * t.val_accuracy:.2f} %, from the stage cache ({t.where['key']})")
    return (f"[green]v[/] #{t.id} {t.config.label()}: {t.size_bytes / 1024:.1f} KiB, val {100 * t.val_accuracy:.2f} %, "
            f"{t.seconds:.1f} s on {where} pid {t.where.get('pid')} ({t.device})")


def search(
    recipe: CompressRecipe | str | Path,
    config: SearchConfig | str | Path | None = None,
    *,
    model: Any = None,
    train: Any = None,
    calibration: Any = None,
    validation: Any = None,
    test: Any = None,
    show_progress: bool = True,
    cache_dir: str | Path | None = None,
) -> SearchReport:
    """Run the search; returns the report (every trial, the front). Nothing is written: see ``report.write``.

    ``recipe`` is the base compress recipe (its [model] factory rebuilds the model in each worker);
    ``model`` an optional ``nn.Module`` of that factory with the fp32 weights (default: the recipe's
    state dict). Data arguments override the files: ``(x, y)`` tuples or ``.npz`` paths. Accuracy for
    the budget and the front is measured on ``validation``; ``test`` is held out and only reported.

    With ``cache_dir`` every trial is a stage of edgeseal's stage pipeline (:mod:`edgeseal.stages`): a
    trial whose settings, base recipe, model weights, data and edgeseal code match an earlier run's comes
    back from the cache (``where.executor == "cache"``) instead of running; the candidates' latency is
    re-measured side by side as always, so cached and fresh trials are timed alike.
    """
    started = time.perf_counter()
    if not isinstance(recipe, CompressRecipe):
        recipe = load_recipe(recipe)
    if config is None:
        config = SearchConfig()
    elif not isinstance(config, SearchConfig):
        config = load_search(config)
    check_base_recipe(recipe)
    inputs = _inputs(recipe, config, model, train, calibration, validation, test)
    chosen = list(enumerate(choose_trials(config)))
    from ..progress import Progress
    from ..stages import StageCache, Stages

    # keys (the code's and the data's digests) only when there is a cache to look them up in
    stages = None if cache_dir is None else Stages(StageCache(Path(cache_dir)), lambda line: None)
    base = None if stages is None else _trial_stage_inputs(inputs, config)
    keys: dict[int, str] = {}
    results: dict[int, TrialResult] = {}
    with Progress(quiet=not show_progress) as sink:
        with sink.task("search trials", len(chosen)) as bar:

            def on_result(result: TrialResult) -> None:
                results[result.id] = result
                sink.status(_trial_line(result), markup=True)
                bar.advance()
                if result.id in keys and result.ok:  # failures are not kept: they run again next time
                    stages.store(result.config.label(), TRIAL_STAGE, keys[result.id], _trial_files(result),
                                 result.seconds)

            todo = []
            for tid, trial in chosen:
                if stages is None:
                    todo.append((tid, trial))
                    continue
                key, files = stages.lookup(trial.label(), TRIAL_STAGE, {**base, "trial": trial.to_dict()})
                if files is None:
                    keys[tid] = key
                    todo.append((tid, trial))
                else:
                    on_result(_cached_trial(tid, key, files))
            executor = _run_trials(inputs, config, todo, on_result) if todo else {"executor": "cache"}
            executor["cached_trials"] = len(chosen) - len(todo)
        trials_done = time.perf_counter()
        ref = results[0]
        if not ref.ok:
            raise ConfigError(f"the fp32 reference (the recipe's model, exported as it is) failed: {ref.error}; "
                              "fix the recipe or data before searching")
        trials = [_judge(results[i], ref, config.budget, None) for i in sorted(results)]
        candidates = {t.id: t.model for t in trials if t.ok and not t.budget_failures}
        with sink.task("re-measuring latency", latency_rounds(config.latency_runs, 10)) as bar:
            lat = remeasure_latency(candidates, inputs.validation[0], runs=config.latency_runs, turn=10,
                                    progress=bar.advance)
    trials = [_judge(t, ref, config.budget, lat.get(t.id)) for t in trials]
    meeting = [t for t in trials if t.meets_budget]
    front_ids = {meeting[i].id for i in pareto_front([(t.size_bytes, t.latency_ms, t.val_accuracy) for t in meeting])}
    trials = [dataclasses.replace(t, on_front=t.id in front_ids) for t in trials]
    finished = time.perf_counter()
    size = len(grid(config.space))  # distinct configurations, the fp32 reference apart
    return SearchReport(
        config=config, recipe=recipe, trials=tuple(trials), front=tuple(sorted(front_ids)), grid_size=size,
        executor=executor, notes=_notes(inputs, config, len(chosen) - 1, size, len(candidates))
        + ((f"{executor['cached_trials']} of {len(chosen)} trials came from the stage cache {cache_dir} (same "
            "settings, recipe, weights, data and code as an earlier run; where = cache)",)
           if executor.get("cached_trials") else ()),
        seconds={"trials": round(trials_done - started, 2), "remeasure": round(finished - trials_done, 2),
                 "total": round(finished - started, 2)},
    )


TRIAL_STAGE = "search trial"


def _trial_stage_inputs(inputs: TrialInputs, config: SearchConfig) -> dict[str, Any]:
    """What every trial's stage key shares: the base recipe (with its files' and factory's digests), the
    budget, the fp32 weights, the data, where trials may run, and how long they time."""
    from ..config import config_to_dict
    from ..stages import arrays_digest, content_inputs
    from .executors import TRIAL_LATENCY_RUNS

    return {"recipe": content_inputs(config_to_dict(inputs.recipe)), "budget": config.budget.to_dict(),
            "weights": hashlib.sha256(inputs.state_dict).hexdigest(),
            "data": [arrays_digest(*(inputs.train or (None, None))), arrays_digest(inputs.calibration),
                     arrays_digest(*inputs.validation), arrays_digest(*(inputs.test or (None, None)))],
            "gpus_per_trial": config.gpus_per_trial, "latency_runs": TRIAL_LATENCY_RUNS}


def _trial_files(result: TrialResult) -> dict[str, bytes]:
    return {"trial.json": json.dumps(result.to_dict(), default=str).encode(), "model.onnx": result.model or b""}


def _cached_trial(trial_id: int, key: str, files: dict[str, bytes]) -> TrialResult:
    earlier = TrialResult.from_dict(json.loads(files["trial.json"]), files["model.onnx"])
    return dataclasses.replace(earlier, id=trial_id, seconds=0.0,
                               where={"executor": "cache", "key": key[:12], "ran_on": earlier.where})


def _run_trials(inputs: TrialInputs, config: SearchConfig, chosen: list[tuple[int, TrialConfig]],
                on_result: Callable[[TrialResult], None]) -> dict[str, Any]:
    if config.ray is None:
        workers = config.workers or os.cpu_count() or 1
        return run_local(inputs, chosen, workers=min(workers, len(chosen)), on_result=on_result)
    return run_ray(inputs, chosen, address=config.ray, workers=config.workers,
                   gpus_per_trial=config.gpus_per_trial, on_result=on_result)


def _notes(inputs: TrialInputs, config: SearchConfig, tried: int, size: int, candidates: int) -> tuple[str, ...]:
    """What a reader of the report must know to read its numbers right."""
    n_val, n_test = len(inputs.validation[1]), (len(inputs.test[1]) if inputs.test else 0)
    return (
        f"accuracy: the budget and the front use the validation split ({n_val} samples); "
        + (f"test accuracy ({n_test} held-out samples) is reported, never used to select" if n_test else
           "no test split was given, so there is no held-out number"),
        f"latency: each trial measured p50 next to other running trials (noisy, shown with ~); the {candidates} "
        f"trials meeting the accuracy/size budget were re-measured side by side in the driver (batch 1, one ONNX "
        f"Runtime thread, {config.latency_runs} runs each, taking turns of 10 in a rotating order); the latency "
        "budget and the front use those numbers",
        f"{tried} of {size} configurations tried"
        + (f" (a random sample, seed {config.seed})" if tried < size else " (the whole grid)")
        + ", plus the fp32 reference (#0)",
    )


def _judge(t: TrialResult, ref: TrialResult, budget: Budget, latency_ms: float | None) -> TrialResult:
    if not t.ok:
        return t
    drop = 100.0 * (ref.val_accuracy - t.val_accuracy)
    failures = budget.failures(drop=drop, size_bytes=t.size_bytes, latency_ms=latency_ms)
    judged = latency_ms is not None or bool(failures)  # candidates wait for their re-measured latency
    return dataclasses.replace(t, drop=drop, latency_ms=latency_ms, budget_failures=failures,
                               meets_budget=judged and not failures)


# --------------------------------------------------------------------------- digits, built in


def digits_recipe(folder: Path) -> CompressRecipe:
    """The recipe of examples/digits/recipe.toml, with its files in ``folder`` (a test keeps the two equal)."""
    from ..compress.recipe import DataSpec, DistillStage, ExportStage, ModelSpec, PruneStage, QuantizeStage, TargetSpec

    return CompressRecipe(
        latency_runs=200,
        model=ModelSpec(factory="edgeseal.converters.zoo:DigitsCNN", state_dict=str(folder / "digits.pt"),
                        input_shape=(1, 8, 8)),
        data=DataSpec(train=str(folder / "train.npz"), calibration=str(folder / "calib.npz"),
                      eval=str(folder / "eval.npz")),
        prune=PruneStage(method="structured", ratio=0.5, epochs=20),
        distill=DistillStage(temperature=4.0, alpha=0.7),
        quantize=QuantizeStage(mode="static", calibration="minmax", max_drop=0.5),
        export=ExportStage(format="onnx"),
        target=TargetSpec(name="rpi4"),
    )


def prepare_digits(folder: Path, *, show_progress: bool = True) -> tuple[CompressRecipe, Path]:
    """What examples/digits/make_data.py writes (splits as .npz, the trained CNN's state dict), unless present.

    Returns the digits recipe and the test split's path.
    """
    folder = Path(folder)
    names = ("train.npz", "calib.npz", "eval.npz", "test.npz", "digits.pt")
    if not all((folder / n).is_file() for n in names):
        import torch

        from edgeseal.converters.zoo import load_digits_split, train_digits_cnn

        folder.mkdir(parents=True, exist_ok=True)
        d = load_digits_split()
        np.savez(folder / "train.npz", x=d.x_train, y=d.y_train)
        np.savez(folder / "calib.npz", x=d.x_val, y=d.y_val)
        np.savez(folder / "eval.npz", x=d.x_val, y=d.y_val)
        np.savez(folder / "test.npz", x=d.x_test, y=d.y_test)
        torch.save(train_digits_cnn(d, epochs=15, show_progress=show_progress).state_dict(), folder / "digits.pt")
    return digits_recipe(folder), folder / "test.npz"


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """Register ``edgeseal search``."""
    p = subparsers.add_parser(
        "search",
        help="try compression configurations; keep the Pareto front (size, latency, accuracy) that meets a budget",
        description="Run compress trials over a search space (locally or on Ray) and write the Pareto front, "
                    "a plot and a report.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recipe", help="base compress recipe (TOML); its [model] factory rebuilds the model")
    src.add_argument("--digits", action="store_true",
                     help="the built-in digits example: trains its CNN into OUT/digits-data first (as "
                          "examples/digits/make_data.py does) unless it is there")
    p.add_argument("--space", help="search file (TOML): [space], [budget], trials, seed, workers, ray, test")
    p.add_argument("--max-drop", type=float, help="accuracy budget: points below fp32 on validation ([budget] max_drop)")
    p.add_argument("--max-size", type=int, help="size budget in bytes ([budget] max_size_bytes)")
    p.add_argument("--max-latency", type=float, help="p50 latency budget in ms ([budget] max_latency_ms)")
    p.add_argument("--trials", type=int, help="at most this many configurations (default 32)")
    p.add_argument("--seed", type=int, help="seed of the sample of configurations")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU core)")
    p.add_argument("--ray", help="run trials on Ray: auto | ray://HOST:PORT | local (starts one in-process)")
    p.add_argument("--validation", help=".npz the budget is judged on (default: the recipe's [data] eval)")
    p.add_argument("--test", help="held-out .npz, reported for every trial and never used to select")
    p.add_argument("--out", default="edgeseal-search", help="folder for search.json, pareto.png, search.html, front/")
    p.add_argument("--cache-dir", help="stage cache: trials an earlier search ran with the same settings, recipe, "
                                       "weights, data and code come back from it instead of running again")
    p.set_defaults(func=_cmd_search)


def _missing_files(recipe: CompressRecipe) -> list[str]:
    paths = [recipe.model.state_dict, recipe.data.train, recipe.data.calibration, recipe.data.eval]
    return [p for p in paths if p is not None and not Path(p).is_file()]


def _cmd_search(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    config = load_search(args.space) if args.space else SearchConfig()
    budget = {k: v for k, v in (("max_drop", args.max_drop), ("max_size_bytes", args.max_size),
                                ("max_latency_ms", args.max_latency)) if v is not None}
    overrides = {k: getattr(args, k) for k in ("trials", "seed", "workers", "ray", "validation", "test")
                 if getattr(args, k) is not None}
    if args.digits:
        recipe, test = prepare_digits(out / "digits-data", show_progress=not args.json)
        overrides.setdefault("test", str(test))  # its own held-out split, whatever the search file names
    else:
        recipe = load_recipe(args.recipe)
        missing = _missing_files(recipe)
        if missing:
            raise ConfigError(f"the recipe's files are missing: {', '.join(missing)}; create them first (for "
                              "examples/digits: python examples/digits/make_data.py), or use edgeseal search --digits")
    config = dataclasses.replace(config, budget=dataclasses.replace(config.budget, **budget), **overrides)
    report = search(recipe, config, show_progress=not args.json, cache_dir=args.cache_dir)
    paths = report.write(out)
    files = {k: str(v) for k, v in paths.items()} | {"front": str(out / "front")}
    text = report.render() + "\n\n" + f"wrote {paths['json']}, {paths['png']}, {paths['html']} and " \
        f"the front's {len(report.front)} model(s) in {out / 'front'}"
    if not report.front:
        text += "\n\nedgeseal search: no configuration meets the budget; widen it (--max-drop) or the space"
    return {**report.to_dict(), "files": files, "text": text, "exit_code": 0 if report.front else 1}
