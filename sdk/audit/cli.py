"""``edgeseal audit``: run the audit from a TOML recipe, write JSON/HTML/Markdown, apply the gate.

Exit status: 0 when every limit holds, 1 when an artifact leaks or breaks more
than the recipe allows, 2 for a bad recipe or argument (``ConfigError``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_audit", "quick_config"]


def quick_config(cfg):
    """A small, fast variant of ``cfg`` (one seed, fewer models/queries) for smoke runs and CI."""
    from .config import (DisagreementConfig, ExplanationConfig, MembershipConfig, RobustnessConfig,
                         VariantConfig)
    from .training import TrainConfig

    return dataclasses.replace(
        cfg, seeds=cfg.seeds[:1],
        train=TrainConfig(hidden=(64, 64), epochs=40, batch_size=32),
        membership=MembershipConfig(reference_models=4, reference_seed=cfg.membership.reference_seed),
        robustness=dataclasses.replace(cfg.robustness, examples=60, blackbox_queries=40, pgd_steps=5),
        disagreement=dataclasses.replace(cfg.disagreement, examples=60, queries=40),
        explanation=dataclasses.replace(cfg.explanation, examples=20),
        variant_options=dataclasses.replace(cfg.variant_options, prune_finetune_epochs=3, distill_epochs=20,
                                            dp_epochs=5, adv_epochs=2),
    )


def cmd_audit(args: argparse.Namespace) -> dict[str, Any]:
    from edgeseal.runtime.errors import ConfigError

    from .config import AuditConfig, load_recipe
    from .gate import evaluate_gate
    from .pipeline import run_audit
    from .report import render_markdown, write_html, write_json

    cfg = load_recipe(args.recipe) if args.recipe else AuditConfig()
    changes: dict[str, Any] = {}
    if args.datasets:
        changes["datasets"] = tuple(args.datasets)
    if args.seeds:
        changes["seeds"] = tuple(args.seeds)
    if args.variants:
        changes["variants"] = tuple(args.variants)
    if args.no_seal:
        changes["sealed"] = False
    try:
        cfg = dataclasses.replace(cfg, **changes) if changes else cfg
    except TypeError as e:  # pragma: no cover - replace only gets known fields
        raise ConfigError(str(e)) from None
    if args.quick:
        cfg = quick_config(cfg)
    report = run_audit(cfg, progress=not args.quiet and not getattr(args, "json", False))
    report["gate"] = evaluate_gate(report, cfg.gate, gate_epsilon_index=cfg.robustness.gate_epsilon_index)
    out = Path(args.out)
    stem = args.stem
    paths = {"json": str(write_json(report, out / f"{stem}.json")), "html": str(write_html(report, out / f"{stem}.html"))}
    md = render_markdown(report)
    (out / f"{stem}.md").write_text(md)
    paths["markdown"] = str(out / f"{stem}.md")
    gate = report["gate"]
    lines = [md, "", f"reports: {paths['html']} (open in a browser), {paths['json']}"]
    for v in gate["violations"]:
        lines.append(f"over the limit: {v['dataset']}/{v['artifact']} {v['check']} = {v['value']:.4f} "
                     f"(limit {v['limit']:.4f})")
    lines.append("gate: PASSED" if gate["passed"] else "gate: FAILED (exit 1): an artifact leaks or breaks more "
                 "than the recipe allows; see the violations above and [audit.gate] in the recipe")
    return {"text": "\n".join(lines), "exit_code": 0 if gate["passed"] else 1, "ok": gate["passed"],
            "reports": paths, "violations": gate["violations"]}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "audit", help="privacy/robustness audit of compressed artifacts (membership inference, adversarial, drift)",
        description="Train the deliberately overfitted target(s), build int8/pruned/distilled/DP variants, seal "
                    "them, attack every artifact through the runtime and write audit.json/.html/.md. Exits 1 when "
                    "an artifact is over a limit of the recipe's [audit.gate].")
    p.add_argument("--recipe", help="TOML recipe with an [audit] table (default: built-in settings)")
    p.add_argument("--out", default="audit-report", help="output folder (default: ./audit-report)")
    p.add_argument("--stem", default="audit", help="file name stem: STEM.json, STEM.html, STEM.md (default: audit)")
    p.add_argument("--datasets", nargs="+", choices=["breast_cancer", "digits"], help="override the recipe's datasets")
    p.add_argument("--seeds", nargs="+", type=int, help="override the recipe's seeds")
    p.add_argument("--variants", nargs="+", choices=["int8", "pruned", "distilled", "dp-sgd", "pruned-advft"],
                   help="override the recipe's variants")
    p.add_argument("--no-seal", action="store_true", help="attack plain ONNX files instead of sealed packages")
    p.add_argument("--quick", action="store_true", help="one seed, small models and budgets (smoke run, ~1 min)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)
