"""``edgeseal search`` on the digits example, locally and through a local Ray cluster.

    python bench/search_digits.py          # -> bench/results/search_digits.{json,md,png}; full reports in out/digits/

The space and budget are examples/digits/search.toml (a seeded sample of 32 of its configurations plus
the fp32 reference); the base recipe is examples/digits/recipe.toml (its files are written first, as
examples/digits/make_data.py does, when missing). The same search runs twice: in 2 local worker
processes, then as Ray tasks on a single-node cluster started here with ``ray start --head --num-cpus=2``
(token authentication on) and reached through its client server (``ray://127.0.0.1:PORT``). The local
run keeps every trial in a fresh stage cache (``--cache-dir``); a third run, the same search again, takes
every trial that succeeded from it.
Selection uses the validation split; test accuracy is held out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2


def main() -> None:
    from edgeseal.search import load_search, prepare_digits, search
    from edgeseal.search.executors import local_ray_head

    recipe, test = prepare_digits(ROOT / "out" / "digits")
    config = load_search(ROOT / "examples" / "digits" / "search.toml")
    runs = {}
    load = {"local": [os.getloadavg()[0]]}
    cache = ROOT / "out" / "digits" / "search-cache"
    shutil.rmtree(cache, ignore_errors=True)
    local_config = dataclasses.replace(config, workers=WORKERS, test=str(test))
    local = search(recipe, local_config, cache_dir=cache)
    load["local"].append(os.getloadavg()[0])
    local.write(ROOT / "out" / "digits" / "search-local")
    runs["local"] = local
    load["cached"] = [os.getloadavg()[0]]
    runs["cached"] = search(recipe, local_config, cache_dir=cache)
    load["cached"].append(os.getloadavg()[0])
    started = time.perf_counter()
    with local_ray_head(num_cpus=WORKERS) as head:
        os.environ.update(head.env)  # this process is the driver: it needs the head's token
        address = head.address
        head_s = time.perf_counter() - started
        load["ray"] = [os.getloadavg()[0]]
        remote = search(recipe, dataclasses.replace(config, ray=address, test=str(test)))
        load["ray"].append(os.getloadavg()[0])
    remote.write(ROOT / "out" / "digits" / "search-ray")
    runs["ray"] = remote
    res = {name: summary(r) | {"load_average_1min_before_after": load[name]} for name, r in runs.items()}
    res["ray"]["head_start_s"] = round(head_s, 1)
    res["agreement"] = agreement(local, remote)
    res["agreement_cached"] = agreement(local, runs["cached"])
    res["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                      "ray": _ray_version(), "latency": "p50, batch 1, one ONNX Runtime thread"}
    out = ROOT / "bench" / "results"
    (out / "search_digits.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (out / "search_digits.png").write_bytes(local.plot_png())
    (out / "search_digits.md").write_text(render(res))
    print(render(res))


def summary(report) -> dict:
    ref = report.reference
    pick = lambda t: {  # noqa: E731
        "id": t.id, "config": t.config.label(), "size_bytes": t.size_bytes, "latency_ms": t.latency_ms,
        "val_accuracy": t.val_accuracy, "test_accuracy": t.test_accuracy, "drop": t.drop,
        "float_layers": list(t.float_layers),
    }
    return {
        "budget": report.config.budget.to_dict(),
        "counts": report.counts(),
        "grid_size": report.grid_size,
        "seconds": report.seconds,
        "executor": {k: v for k, v in report.executor.items() if k != "nodes"},
        "nodes": len(report.executor.get("nodes", [])) or None,
        "reference": pick(ref) | {"latency_ms": ref.latency_ms},
        "front": [pick(t) for t in report.front_trials()],
        "misses": sorted({f.split(" ")[0] for t in report.trials for f in t.budget_failures}),
        "trials": [
            {"id": t.id, "config": t.config.label(), "status": t.status, "seconds": round(t.seconds, 2),
             "size_bytes": t.size_bytes, "val_accuracy": t.val_accuracy, "test_accuracy": t.test_accuracy,
             "latency_trial_ms": t.latency_p50_ms, "latency_ms": t.latency_ms, "meets_budget": t.meets_budget,
             "on_front": t.on_front, "where": t.where, "error": t.error}
            for t in report.trials
        ],
        "notes": list(report.notes),
    }


def agreement(a, b) -> dict:
    """Same configurations, same seed, one thread each: do the two executors produce the same models?"""
    other = {t.config: t for t in b.trials}
    same = [t for t in a.trials if t.ok and t.config in other and other[t.config].ok]
    equal = [t for t in same if (t.size_bytes, t.val_accuracy, t.test_accuracy)
             == (other[t.config].size_bytes, other[t.config].val_accuracy, other[t.config].test_accuracy)]
    return {"compared": len(same), "identical_size_and_accuracy": len(equal),
            "same_front": sorted(a.front) == sorted(b.front)}


def render(res: dict) -> str:
    loc, ray, cached = res["local"], res["ray"], res["cached"]
    ref = loc["reference"]
    b = loc["budget"]
    lines = [
        "# `edgeseal search` on digits (scikit-learn digits: 360 validation, 360 test images)",
        "",
        f"Space: examples/digits/search.toml, {loc['grid_size']} configurations; a seeded sample of "
        f"{loc['counts']['trials'] - 1} plus the fp32 reference. Budget: accuracy drop <= {b['max_drop']:g} points "
        "on validation. Base recipe: examples/digits/recipe.toml (structured pruning, fine-tuned; rpi4 target).",
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, Python {res['machine']['python']}, "
        f"Ray {res['machine']['ray']}; {res['machine']['latency']}.",
        "",
        "| run | trials | failed | meet the budget | front | trials wall s | re-measure s | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = (("local, 2 worker processes", loc), ("Ray, 1-node cluster (2 CPUs) via ray://", ray),
            (f"local again: {cached['executor'].get('cached_trials', 0)} trials from the stage cache", cached))
    for name, r in runs:
        c, s = r["counts"], r["seconds"]
        lines.append(f"| {name} | {c['trials']} | {c['errors']} | {c['meet_budget']} | {c['front']} | "
                     f"{s['trials']:.{0 if s['trials'] >= 10 else 1}f} | {s['remeasure']:.1f} | "
                     f"{s['total']:.{0 if s['total'] >= 10 else 1}f} |")
    ag = res["agreement"]
    lines += [
        "",
        f"Both executors trained the same configurations with the same seed on one thread each: "
        f"{ag['identical_size_and_accuracy']} of {ag['compared']} models have identical size and accuracy; "
        f"same front: {'yes' if ag['same_front'] else 'no (latency is re-measured per run, so near-ties can swap)'}. "
        f"The cached run: {res['agreement_cached']['identical_size_and_accuracy']} of "
        f"{res['agreement_cached']['compared']} identical (trials that failed are not cached and ran again); "
        f"same front: {'yes' if res['agreement_cached']['same_front'] else 'no (latency re-measured: near-ties can swap)'}.",
        "",
        "## The front (local run), against the fp32 model",
        "",
        "Latency: every budget candidate re-measured side by side in the driver (300 runs each, in turns of 10 "
        "calls, rotating), not the noisy in-trial figure.",
        "",
        "| # | configuration | bytes | x smaller | p50 ms | x faster | val % | drop | test % | kept in float |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {ref['id']} | fp32 reference | {ref['size_bytes']:,} | 1.0 | {ref['latency_ms'] or float('nan'):.4f} | 1.0 | "
        f"{100 * ref['val_accuracy']:.2f} | 0.00 | {100 * ref['test_accuracy']:.2f} | |",
    ]
    for t in loc["front"]:
        lines.append(
            f"| {t['id']} | {t['config']} | {t['size_bytes']:,} | {ref['size_bytes'] / t['size_bytes']:.1f} | "
            f"{t['latency_ms']:.4f} | {(ref['latency_ms'] or float('nan')) / t['latency_ms']:.1f} | "
            f"{100 * t['val_accuracy']:.2f} | {t['drop']:+.2f} | {100 * t['test_accuracy']:.2f} | "
            f"{', '.join(t['float_layers']) or ''} |"
        )
    worst = max(loc["front"], key=lambda t: ref["test_accuracy"] - t["test_accuracy"])
    lines += [
        "",
        f"Held out: the front's validation drops are within the budget by construction; on the test split the "
        f"worst front point (#{worst['id']}) is {100 * (ref['test_accuracy'] - worst['test_accuracy']):.2f} points "
        f"below the fp32 model's test accuracy (validation drop {worst['drop']:+.2f}). Picking the best of "
        f"{loc['counts']['trials'] - 1} trials on 360 validation images favours the lucky ones: read the test column "
        "(or use a larger validation split) before shipping a point.",
        "",
        f"Ray: the head started in {ray['head_start_s']} s (not in the totals); the Ray totals include connecting "
        "through the client server. 1-minute load average before/after: local "
        f"{' / '.join(f'{v:.2f}' for v in loc['load_average_1min_before_after'])}, "
        f"Ray {' / '.join(f'{v:.2f}' for v in ray['load_average_1min_before_after'])}.",
    ]
    lines += ["", "![size vs latency, front ringed](search_digits.png)", ""]
    lines += [f"- {n}" for n in loc["notes"]]
    return "\n".join(lines) + "\n"


def _ray_version() -> str:
    import ray

    return ray.__version__



if __name__ == "__main__":
    main()
