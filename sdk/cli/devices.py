"""``edgeseal device``: build and inspect emulated devices (``edgeseal device create qemu-rpi``).

Building is an explicit opt-in: it needs root, the Debian packages
``qemu-user-static debootstrap binfmt-support`` and a few minutes (debootstrap of an
arm64 root under emulation); the result is cached and reused by ``--device qemu://qemu-rpi``.
The emulated Pi 5 (``qemu-rpi5``, Cortex-A76) runs in the same root: ``device create qemu-rpi5``
builds (or reuses) it. Each device has one name, used the same way everywhere:
``device create NAME``, ``--device qemu://NAME`` (or just ``--device NAME``), ``device = "qemu://NAME"``.

Under ``sudo``, a virtual environment's ``edgeseal`` is not on root's PATH: run
``sudo "$(command -v edgeseal)" device create qemu-rpi``.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["add_parser", "cmd_create", "cmd_status", "cmd_remove"]


def cmd_create(args) -> dict[str, Any]:
    from ..targets.qemu import build_device

    from ..progress import Progress

    started = time.perf_counter()
    # --json: plain lines on stderr (the JSON document alone on stdout); the build's output as passing details
    with Progress(terminal=False if args.json else None) as sink:
        info = build_device(args.name, step=sink.step, status=sink.detail, rebuild=args.rebuild)
    info["seconds_total"] = round(time.perf_counter() - started, 1)
    info["text"] = (f"{args.name} is ready ({info['arch']} Debian {info['suite']}, python {info['python']}) at "
                    f"{info['path']}\n  wheels: {', '.join(w.split('-')[0] + ' ' + w.split('-')[1] for w in info['wheels'])}"
                    f"\n  took {info['seconds_total']} s; use it with: edgeseal verify MODEL --device qemu://{args.name} ...")
    return info


def cmd_status(args) -> dict[str, Any]:
    from ..targets.qemu import DEVICES, device_status

    names = [args.name] if args.name else list(DEVICES)
    devices = [device_status(n) for n in names]
    lines = [f"{d['name']:<10} {'ready' if d['ready'] else 'not built'}  {d['path']}" for d in devices]
    return {"devices": devices, "text": "\n".join(lines)}


def cmd_remove(args) -> dict[str, Any]:
    from ..targets.qemu import remove_device

    remove_device(args.name)
    return {"removed": args.name, "text": f"removed {args.name}"}


def add_parser(subparsers) -> None:
    from ..targets.qemu import DEVICES

    names = list(DEVICES)
    p = subparsers.add_parser("device", help=f"build and manage emulated devices ({', '.join(names)})")
    sub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="build an emulated device once (needs root; minutes)",
                       description='Build an emulated device. Under sudo use the full path of edgeseal: '
                                   'sudo "$(command -v edgeseal)" device create qemu-rpi')
    c.add_argument("name", choices=names,
                   help="qemu-rpi: Raspberry Pi 4 (Cortex-A72), aarch64 Debian bookworm, Python 3.11; "
                        "qemu-rpi5: Raspberry Pi 5 (Cortex-A76), the same root. Verify on it with "
                        "--device qemu://NAME")
    c.add_argument("--rebuild", action="store_true", help="delete and build again from scratch")
    c.set_defaults(func=cmd_create)
    s = sub.add_parser("status", help="which emulated devices are built")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_status)
    r = sub.add_parser("remove", help="delete an emulated device")
    r.add_argument("name", choices=names)
    r.set_defaults(func=cmd_remove)
