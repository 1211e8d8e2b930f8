"""``edgeseal demo``: the main job, as a built-in release recipe run by ``edgeseal build``.

The demo writes :data:`DEMO_RECIPE` (filled in with ``--epochs``, ``--seed`` and ``--max-drop``) to
``WORKDIR/release.toml`` and builds it, so it runs the very stages a release runs, through the same
content-hashed cache (``WORKDIR/cache``): train a CNN on scikit-learn's digits (real data shipped in
the package) and export the fp32 reference to ONNX; prune a quarter of its channels, fine-tune it with
the fp32 model as teacher and quantize it to int8; seal it for a device key, signed by a publisher
key (both made on first use, in ``WORKDIR/keys``); verify it on the ``local`` device — a separate
process in its own runtime-only virtual environment (no torch) that receives the sealed model and
the sealed test set — against the fp32 model, and sign the report. A second run with nothing
changed reuses every stage. ``edgeseal build WORKDIR/release.toml`` runs the same release again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEMO_RECIPE", "demo_recipe", "run_demo", "add_parser"]

TARGET = "linux-x86_64"

DEMO_RECIPE = """\
# edgeseal demo: the built-in release recipe (edgeseal demo wrote this file; edgeseal build runs it).
[release]
name = "digits"
version = 1
out = "release"

[keys]
dir = "keys"                            # publisher.pem (signs) + linux-x86_64-device.pem (opens)

[model]
factory = "edgeseal.converters.zoo:DigitsCNN"
input_shape = [1, 8, 8]

[model.train]
epochs = {epochs}
lr = 0.002
seed = {seed}

[data]
source = "edgeseal.converters.zoo:digits_splits"   # train / eval (val) / test splits

[budget]
max_drop = {max_drop}                        # accuracy points vs fp32: eval while compressing, test on the device

[compress.prune]
method = "structured"
ratio = 0.25
epochs = 8

[compress.distill]                      # fine-tune the pruned model with the fp32 model as teacher
temperature = 4.0
alpha = 0.7

[compress.quantize]
mode = "static"
calibration = "minmax"

[[target]]
name = "linux-x86_64"
device = "local"                        # a runtime-only venv on this machine
"""


def demo_recipe(*, epochs: int = 12, seed: int = 0, max_drop: float = 1.0) -> str:
    """The demo's release recipe (TOML) with these settings."""
    return DEMO_RECIPE.format(epochs=int(epochs), seed=int(seed), max_drop=float(max_drop))


def run_demo(workdir: Path, *, epochs: int = 12, seed: int = 0, max_drop: float = 1.0, status: Any = print,
             progress: Any = None, show_progress: bool = True, fresh: bool = False) -> tuple[dict[str, Any], Any]:
    """Build the demo release in ``workdir``; return (summary dict, :class:`edgeseal.release.BuildResult`).

    ``max_drop`` is the accuracy budget in points vs the fp32 model; ``fresh`` empties the demo's stage
    cache first, so every stage runs again. Besides the release folder the
    demo leaves the fp32 ONNX reference and the test split next to it (``digits-fp32.onnx``,
    ``digits-test.npz``: ``x``, ``y``), for checks of your own."""
    import shutil

    from ..converters.zoo import digits_splits
    from ..stages import StageCache
    from ..runtime.errors import EdgesealError
    from .pipeline import build

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    recipe = workdir / "release.toml"
    recipe.write_text(demo_recipe(epochs=epochs, seed=seed, max_drop=max_drop))
    cache = workdir / "cache"
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    result = build(recipe, cache_dir=cache, status=status, show_progress=show_progress, verify_progress=progress)

    # the fp32 reference the build verified against, and the test split it verified on
    model_stage = next(r for r in result.records if r.stage == "model")
    files = StageCache(cache).load(model_stage.key)
    if files is None:
        raise EdgesealError(f"the model stage's output is missing from {cache} (was the cache removed mid-run?)")
    (workdir / "digits-fp32.onnx").write_bytes(files["fp32.onnx"])
    x, y = digits_splits(seed)["test"]
    np.savez(workdir / "digits-test.npz", x=x, y=y)

    target = result.release["targets"][TARGET]
    folder = result.out / TARGET
    stages = target.get("stages") or []
    summary = {
        "model": "digits CNN (scikit-learn load_digits, 8x8 images)",
        "passed": result.passed,
        "fp32_onnx_bytes": result.release["fp32"]["onnx_bytes"],
        "int8_onnx_bytes": stages[-1]["size_bytes"] if stages else None,
        "sealed_bytes": (target.get("package") or {}).get("bytes"),
        "stages": stages,
        "seconds": {f"{r.stage}": r.seconds for r in result.records},
        "cached": [r.stage for r in result.records if r.cached],
        "recipe": str(recipe),
        "release": str(result.out),
        "package": str(folder / "digits.eseal"),
        "verification": f"{folder / 'verification.json'} (+ .sig): edgeseal verify-report "
                        f"{folder / 'verification.json'} --trusted {workdir / 'keys' / 'publisher.pub'}",
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, result


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from ..progress import Progress
    from ..runtime.errors import ConfigError
    from ..verify.core import VerificationReport, max_drop_from_args

    if args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: the demo trains its CNN for at least 1 epoch (default 12)")
    with Progress(quiet=args.json) as sink:
        summary, result = run_demo(Path(args.workdir), epochs=args.epochs, seed=args.seed,
                                   max_drop=max_drop_from_args(args), status=sink.status,
                                   progress=None if args.json else sink, show_progress=not args.json,
                                   fresh=args.no_cache)
    report_path = result.out / TARGET / "verification.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    sizes = (f"ONNX fp32 {summary['fp32_onnx_bytes']:,} B -> int8 {summary['int8_onnx_bytes'] or 0:,} B -> "
             f"sealed {summary['sealed_bytes'] or 0:,} B")
    sig = report_path.with_name(report_path.name + ".sig")
    signature = json.loads(sig.read_text()) if report is not None and sig.is_file() else None
    verification = "" if report is None else VerificationReport(report, signature).text() + "\n\n"
    text = (f"{verification}{result.text()}\n  {sizes}\n  recipe {summary['recipe']} (run it again: edgeseal "
            f"build {summary['recipe']})\n  check the report: {summary['verification']}")
    return {**summary, "report": report, "build": result.log(), "exit_code": 0 if result.passed else 1,
            "text": text}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo: the built-in release recipe (train, prune + distil, "
                                           "int8, seal, verify on the local device)")
    p.add_argument("--workdir", default="edgeseal-demo", help="where the recipe, keys, cache and release go")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-drop", type=float, metavar="POINTS", help="largest accuracy drop allowed, in points (default 1)")
    p.add_argument("--budget", type=float, metavar="FRACTION", help="deprecated: the same as a fraction; warns")
    p.add_argument("--no-cache", action="store_true", help="run every stage again (the cache is WORKDIR/cache)")
    p.set_defaults(func=_cmd_demo)
