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
    from .config import MembershipConfig
    from .training import TrainConfig

    return dataclasses.replace(
        cfg, seeds=cfg.seeds[:1],
        train=TrainConfig(hidden=(64, 64), epochs=40, batch_size=32),
        membership=MembershipConfig(reference_models=4, reference_seed=cfg.membership.reference_seed),
        robustness=dataclasses.replace(cfg.robustness, examples=60, blackbox_queries=40, pgd_steps=5),
        disagreement=dataclasses.replace(cfg.disagreement, examples=60, queries=40),
        explanation=dataclasses.replace(cfg.explanation, examples=20, lime_samples=150, shap_samples=100),
        variant_options=dataclasses.replace(cfg.variant_options, prune_finetune_epochs=3, distill_epochs=20,
                                            dp_epochs=5, adv_epochs=2),
    )


def artifact_from_path(path: str, *, name: str, key: str | None, trusted: list[str], allow_unsigned: bool):
    """``.onnx`` / ``.tflite`` files as they are; anything else is opened as a sealed package."""
    from edgeseal.runtime.errors import ConfigError

    from .artifacts import OnnxArtifact, SealedArtifact, TFLiteArtifact

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"artifact {p} does not exist; give an .onnx, .tflite or sealed package file")
    if p.suffix == ".onnx":
        return OnnxArtifact(name=name, kind="onnx", model=p.read_bytes(), metadata={"sealed": False, "path": str(p)})
    if p.suffix == ".tflite":
        return TFLiteArtifact(name=name, kind="tflite", model=p.read_bytes(), metadata={"sealed": False, "path": str(p)})
    options: dict[str, Any] = {"key": key, "trusted": list(trusted), "allow_unsigned": allow_unsigned}
    return SealedArtifact(name=name, kind="sealed", package=p, load_options=options,
                          metadata={"sealed": True, "path": str(p)})


def _audit_artifacts(args: argparse.Namespace, gate_cfg, gate_index: int) -> dict[str, Any]:
    from edgeseal.runtime.errors import ConfigError

    from .user import UserAuditConfig, audit_artifacts, load_npz

    if not args.reference or not args.data:
        raise ConfigError("auditing --artifact files needs --reference (the fp32 model) and --data (an .npz with "
                          "x_members, y_members, x_nonmembers, y_nonmembers)")
    opts = {"key": args.key, "trusted": args.trusted or [], "allow_unsigned": args.allow_unsigned}
    reference = artifact_from_path(args.reference, name="fp32", **opts)
    names = [Path(a).name for a in args.artifact]
    if len(set(names)) != len(names) or "fp32" in names:
        names = [f"artifact{i + 1}" for i in range(len(names))]
    artifacts = [artifact_from_path(a, name=n, **opts) for a, n in zip(args.artifact, names)]
    xm, ym, xn, yn = load_npz(args.data)
    lo, hi = (args.clip if args.clip else (None, None))
    cfg = UserAuditConfig(epsilons=tuple(args.epsilons), lo=lo, hi=hi, radius=args.radius, queries=args.queries,
                          examples=args.examples, reference_models=args.reference_models,
                          decision_attack=args.decision_attack)
    train_fn = None
    if args.train_fn:
        from edgeseal.compress.core import resolve_callable

        train_fn = resolve_callable(args.train_fn, "--train-fn")
    report = audit_artifacts(reference, artifacts, x_members=xm, y_members=ym, x_nonmembers=xn, y_nonmembers=yn,
                             config=cfg, train_fn=train_fn)
    from .gate import evaluate_gate

    report["gate"] = evaluate_gate(report, gate_cfg, gate_epsilon_index=min(gate_index, len(cfg.epsilons) - 1))
    return report


def cmd_audit(args: argparse.Namespace) -> dict[str, Any]:
    from edgeseal.runtime.errors import ConfigError

    from .config import AuditConfig, load_recipe
    from .gate import evaluate_gate
    from .pipeline import run_audit

    cfg = load_recipe(args.recipe) if args.recipe else AuditConfig()
    if args.artifact:
        report = _audit_artifacts(args, cfg.gate, cfg.robustness.gate_epsilon_index)
        return _write(report, args)
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
    return _write(report, args)


def _write(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from ..report.base import write
    from .report import AuditReport, write_json

    out = Path(args.out)
    stem = args.stem
    audit = AuditReport(report)
    paths = {"json": str(write_json(report, out / f"{stem}.json")),  # compact, NaN kept: the schema's JSON
             "html": str(write(audit, out / f"{stem}.html"))}
    md = audit.text()
    paths["markdown"] = str(write(audit, out / f"{stem}.md"))
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
    g = p.add_argument_group("audit your own artifacts (black-box, any input shape; LiRA with --train-fn)")
    g.add_argument("--artifact", action="append", default=[],
                   help="an artifact that ships: sealed package, .onnx or .tflite (repeat for several)")
    g.add_argument("--reference", help="the fp32 reference model (.onnx, .tflite or sealed)")
    g.add_argument("--data", help=".npz with x_members, y_members, x_nonmembers, y_nonmembers")
    g.add_argument("--key", help="device key (PEM) that opens the sealed packages")
    g.add_argument("--trusted", action="append", help="trusted publisher public key (PEM); repeat for several")
    g.add_argument("--allow-unsigned", action="store_true", help="accept unsigned packages")
    g.add_argument("--epsilons", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2],
                   help="L-inf budgets for the robustness curves (default: 0 0.05 0.1 0.2)")
    g.add_argument("--clip", nargs=2, type=float, metavar=("LO", "HI"), help="valid input range, e.g. 0 1 for pixels")
    g.add_argument("--radius", type=float, default=0.1, help="L-inf radius of the disagreement search (default 0.1)")
    g.add_argument("--queries", type=int, default=200,
                   help="black-box budget: square-attack iterations / disagreement-search steps (default 200)")
    g.add_argument("--examples", type=int, default=200, help="non-members attacked for robustness (default 200)")
    g.add_argument("--train-fn", metavar="MODULE:CALLABLE",
                   help="your training recipe, f(x, y, seed) -> predict callable or torch module: adds LiRA with "
                        "reference models it trains")
    g.add_argument("--reference-models", type=int, default=8, help="LiRA reference models (even, default 8)")
    g.add_argument("--decision-attack", choices=["hopskipjump", "boundary"],
                   help="also a labels-only ART attack (HopSkipJump or boundary) on every artifact")
    p.set_defaults(func=cmd_audit)
