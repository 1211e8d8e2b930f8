"""``edgeseal targets``: list target profiles, show one, or check a model against one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_targets"]


def _show(profile) -> str:
    q = profile.quantization
    ops = profile.ops()
    return "\n".join([
        f"{profile.name}: {profile.description}",
        f"  arch {profile.arch} ({profile.cpu}; {', '.join(profile.cpu_features) or '-'}), os {profile.os}",
        f"  runtime {profile.runtime.value}, format {profile.format.value}, op set {ops.name} "
        f"({len(ops)} ops, {ops.generated_from})",
        f"  int8 {q.format.value}: weights {q.weights} {q.weight_granularity} "
        f"{'symmetric' if q.weight_symmetric else 'asymmetric'}, activations {q.activations} "
        f"{'symmetric' if q.activation_symmetric else 'asymmetric'}",
        f"  cipher {profile.cipher}, threads {profile.threads or 'runtime default'}, "
        f"memory budget {profile.memory_budget_mb} MiB",
        f"  file {profile.source}",
    ])


def cmd_targets(args) -> dict[str, Any]:
    from ..targets import get_profile, list_profiles, search_path
    from ..targets.ops import check_model

    if args.check_model:
        if not args.name:
            from ..runtime.errors import ConfigError

            raise ConfigError("--check MODEL needs a target name: edgeseal targets rpi4 --check model.onnx")
        check = check_model(Path(args.check_model).read_bytes(), args.name)
        result = check.to_dict()
        if not check.format_ok:
            text = f"{args.check_model}: {check.format.value} model, but {args.name} runs {get_profile(args.name).format.value}"
        elif check.unsupported:
            text = f"{args.check_model}: NOT supported on {args.name}: {', '.join(check.unsupported)}"
        else:
            text = f"{args.check_model}: all {sum(check.used.values())} nodes ({len(check.used)} op types) run on {args.name}"
        result["text"] = text
        result["exit_code"] = 0 if check.ok else 1
        return result
    if args.name:
        profile = get_profile(args.name)
        return {**profile.to_dict(), "text": _show(profile)}
    profiles = list_profiles()
    rows = [("name", "arch", "runtime", "format", "int8", "cipher", "threads", "memory", "description")]
    for p in profiles:
        rows.append((p.name, p.arch, p.runtime.value, p.format.value, p.quantization.format.value, p.cipher,
                     str(p.threads or "auto"), f"{p.memory_budget_mb} MiB", p.description))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.append(f"\nprofile files: {', '.join(str(d) for d in search_path())} (first match wins)")
    return {"targets": [p.to_dict() for p in profiles], "text": "\n".join(lines)}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("targets", help="list target profiles, show one, or check a model against one")
    p.add_argument("name", nargs="?", help="a profile name (rpi4 ...) or a profile .toml path")
    p.add_argument("--check", dest="check_model", metavar="MODEL", help="check that MODEL's format and operators run on the target")
    p.set_defaults(func=cmd_targets)
