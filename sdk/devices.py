"""``edgeseal device``: build and inspect emulated devices (``edgeseal device create qemu-rpi``).

Building is an explicit opt-in: it needs root, the Debian packages
``qemu-user-static debootstrap binfmt-support`` and a few minutes (debootstrap of an
arm64 root under emulation); the result is cached and reused by ``--device qemu``.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["add_parser", "cmd_create", "cmd_status", "cmd_remove"]


def _runner():
    """(step, status, stop) callbacks: rich progress when available."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover
        return (lambda s, i, n: print(f"[{i}/{n}] {s}")), (lambda s: None), (lambda: None)
    console = Console(stderr=True)
    live = {"status": None, "started": time.perf_counter()}

    def step(text: str, i: int, n: int) -> None:
        if live["status"] is not None:
            live["status"].stop()
        elapsed = time.perf_counter() - live["started"]
        console.print(f"[bold][{i}/{n}][/bold] {text}  [dim]({elapsed:.0f} s so far)[/dim]")
        live["status"] = console.status(text)
        live["status"].start()

    def status(line: str) -> None:
        if live["status"] is not None:
            live["status"].update(f"[dim]{line}[/dim]")

    def stop() -> None:
        if live["status"] is not None:
            live["status"].stop()

    return step, status, stop


def cmd_create(args) -> dict[str, Any]:
    from .targets.qemu import build_device

    step, status, stop = _runner() if not args.json else ((lambda s, i, n: None), (lambda s: None), (lambda: None))
    started = time.perf_counter()
    try:
        info = build_device(args.name, step=step, status=status, rebuild=args.rebuild)
    finally:
        stop()
    info["seconds_total"] = round(time.perf_counter() - started, 1)
    info["text"] = (f"{args.name} is ready ({info['arch']} Debian {info['suite']}, python {info['python']}) at "
                    f"{info['path']}\n  wheels: {', '.join(w.split('-')[0] + ' ' + w.split('-')[1] for w in info['wheels'])}"
                    f"\n  took {info['seconds_total']} s; use it with: edgeseal verify MODEL --device qemu://{args.name} ...")
    return info


def cmd_status(args) -> dict[str, Any]:
    from .targets.qemu import DEVICES, device_status

    names = [args.name] if args.name else list(DEVICES)
    devices = [device_status(n) for n in names]
    lines = [f"{d['name']:<10} {'ready' if d['ready'] else 'not built'}  {d['path']}" for d in devices]
    return {"devices": devices, "text": "\n".join(lines)}


def cmd_remove(args) -> dict[str, Any]:
    from .targets.qemu import remove_device

    remove_device(args.name)
    return {"removed": args.name, "text": f"removed {args.name}"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("device", help="build and manage emulated devices (qemu-rpi)")
    sub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="build an emulated device once (needs root; minutes)")
    c.add_argument("name", choices=["qemu-rpi"], help="qemu-rpi: aarch64 Debian bookworm, Python 3.11 (rpi4 profile)")
    c.add_argument("--rebuild", action="store_true", help="delete and build again from scratch")
    c.set_defaults(func=cmd_create)
    s = sub.add_parser("status", help="which emulated devices are built")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_status)
    r = sub.add_parser("remove", help="delete an emulated device")
    r.add_argument("name", choices=["qemu-rpi"])
    r.set_defaults(func=cmd_remove)
