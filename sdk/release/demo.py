"""``edgeseal demo``: the end-to-end job on an embedded default.

Trains a small CNN on scikit-learn's digits (real data shipped in the package),
exports it to ONNX, quantizes it to int8, seals the int8 model for a freshly
made device key, then verifies it on the ``local`` device: the verification
harness pushes the package and the (sealed) test set to a separate process in
its own runtime-only virtual environment (no torch), runs it there, compares
with the fp32 reference on the host and signs the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_demo", "add_parser"]


def _step(console: Any, text: str) -> None:
    """A step line: rich on the console, else on stderr (stdout belongs to the result, e.g. --json)."""
    console.print(f"[bold cyan]>[/] {text}") if console else print(f"> {text}", file=sys.stderr)


def run_demo(workdir: Path, *, epochs: int = 12, seed: int = 0, max_drop: float = 1.0, console: Any = None,
             progress: Any = None, show_progress: bool = True) -> tuple[dict[str, Any], Any]:
    """Run the whole pipeline in ``workdir``; return (summary dict, verification report).

    ``max_drop`` is the verification's accuracy budget in points vs the fp32 model."""
    from ..converters.export import export_onnx
    from ..converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from ..converters.zoo import load_digits_split, train_digits_cnn
    from ..runtime.keys import generate_device_key, generate_publisher_key, public_pem, write_private_key
    from ..seal import seal
    from ..verify.core import VerifyConfig, verify

    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    _step(console, "keys: publisher (Ed25519, signs) and device (X25519, opens)")
    publisher, device = generate_publisher_key(), generate_device_key()
    write_private_key(workdir / "publisher.pem", publisher, overwrite=True)
    (workdir / "publisher.pub").write_bytes(public_pem(publisher.public_key()))
    write_private_key(workdir / "device.pem", device, overwrite=True)
    (workdir / "device.pub").write_bytes(public_pem(device.public_key()))
    lap("keys")

    _step(console, f"train a CNN on scikit-learn digits ({epochs} epochs, seed {seed})")
    data = load_digits_split(seed=seed)
    model = train_digits_cnn(data, epochs=epochs, seed=seed, channels=(16, 32, 64), hidden=128,
                             show_progress=show_progress)
    lap("train")

    _step(console, "export to ONNX (torch.export) and check it against torch")
    exported = export_onnx(model, data.x_val)
    fp32 = exported.model
    (workdir / "digits-fp32.onnx").write_bytes(fp32)
    lap("export")

    _step(console, "quantize to int8 (QDQ, per-channel symmetric weights, calibrated on training data)")
    int8 = quantize_onnx_static(fp32, data.x_train, OnnxStaticConfig())
    (workdir / "digits-int8.onnx").write_bytes(int8)
    lap("quantize")

    _step(console, "seal the int8 model for the device key, signed by the publisher")
    package = seal(int8, publisher=publisher, devices=[device.public_key()], name="digits-int8", version=1,
                   content_format="onnx", target="linux-x86_64", out=workdir / "digits.eseal")
    np.savez(workdir / "digits-test.npz", x=data.x_test, y=data.y_test)
    lap("seal")

    _step(console, "verify on the local device (a runtime-only venv, created on first use) against fp32")
    config = VerifyConfig(device="local", key=workdir / "device.pem", trusted=(workdir / "publisher.pub",),
                          publisher=workdir / "publisher.pem", reference=workdir / "digits-fp32.onnx",
                          max_drop=max_drop)
    kwargs = {} if progress is None else {"progress": progress.update, "status": progress.status}
    report = verify(workdir / "digits.eseal", workdir / "digits-test.npz", config, **kwargs)
    report.write(workdir / "verification.json")
    lap("verify")

    summary = {
        "model": "digits CNN (scikit-learn load_digits, 8x8 images)",
        "passed": report.passed,
        "fp32_onnx_bytes": len(fp32),
        "int8_onnx_bytes": len(int8),
        "sealed_bytes": len(package),
        "export_max_abs_error": exported.max_abs_error,
        "seconds": timings,
        "verification": "verification.json (+ .sig): edgeseal verify-report verification.json "
                        "--trusted publisher.pub",
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, report


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from ..progress import Progress
    from ..runtime.errors import ConfigError
    from ..verify.core import max_drop_from_args

    if args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: the demo trains its CNN for at least 1 epoch (default 12)")
    console = None
    if not args.json:
        try:
            from rich.console import Console

            console = Console()
        except ImportError:
            pass
    with Progress(quiet=args.json) as sink:
        summary, report = run_demo(Path(args.workdir), epochs=args.epochs, seed=args.seed,
                                   max_drop=max_drop_from_args(args), console=console, progress=sink,
                                   show_progress=not args.json)
    sizes = (f"ONNX fp32 {summary['fp32_onnx_bytes']:,} B -> int8 {summary['int8_onnx_bytes']:,} B -> "
             f"sealed {summary['sealed_bytes']:,} B; stage seconds {summary['seconds']}")
    return {**summary, "report": report.to_dict(), "exit_code": 0 if report.passed else 1,
            "text": f"{report.text()}\n  {sizes}\n  files in {args.workdir}/ (report: verification.json)"}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo: train, quantize, seal, verify on the local device")
    p.add_argument("--workdir", default="edgeseal-demo", help="where keys, models and reports go")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-drop", type=float, metavar="POINTS", help="largest accuracy drop allowed, in points (default 1)")
    p.add_argument("--budget", type=float, metavar="FRACTION", help="deprecated: the same as a fraction; warns")
    p.set_defaults(func=_cmd_demo)
