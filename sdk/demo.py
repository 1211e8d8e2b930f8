"""``edgeseal demo``: the end-to-end job on an embedded default.

Trains a small CNN on scikit-learn's digits (real data shipped in the package),
exports it to ONNX, quantizes it to int8, seals the int8 model and the test set
for a freshly made device key, then runs the device-side evaluator in a
separate process that only has the runtime (torch is blocked there) and
compares its answers with the fp32 model on the host. Prints a report and
writes it as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_demo", "add_parser"]

# The device side runs in its own interpreter in which torch, onnx and the converters cannot be imported.
_DEVICE_SHIM = textwrap.dedent(
    """
    import sys, runpy
    class _DeviceOnly:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'onnx', 'onnxscript') or name.startswith('edgeseal.converters'):
                raise ImportError(name + ' is not installed on this device')
    sys.meta_path.insert(0, _DeviceOnly())
    sys.argv = ['edgeseal.runtime'] + sys.argv[1:]
    runpy.run_module('edgeseal.runtime', run_name='__main__')
    """
)


def _step(console: Any, text: str) -> None:
    console.print(f"[bold cyan]>[/] {text}") if console else print(f"> {text}")


def run_demo(workdir: Path, *, epochs: int = 12, seed: int = 0, console: Any = None) -> dict[str, Any]:
    """Run the whole pipeline in ``workdir``; return the report dict."""
    import torch

    from .converters.export import export_onnx
    from .converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from .converters.zoo import load_digits_split, train_digits_cnn
    from .runtime.keys import generate_device_key, generate_publisher_key, public_pem, write_private_key
    from .seal import seal

    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)

    _step(console, "keys: publisher (Ed25519) and device (X25519)")
    publisher, device = generate_publisher_key(), generate_device_key()
    write_private_key(workdir / "publisher.pem", publisher, overwrite=True)
    (workdir / "publisher.pub").write_bytes(public_pem(publisher.public_key()))
    write_private_key(workdir / "device.pem", device, overwrite=True)
    (workdir / "device.pub").write_bytes(public_pem(device.public_key()))

    t0 = time.perf_counter()
    _step(console, f"train a CNN on scikit-learn digits ({epochs} epochs, seed {seed})")
    data = load_digits_split(seed=seed)
    model = train_digits_cnn(data, epochs=epochs, seed=seed, channels=(16, 32, 64), hidden=128)
    timed("train", t0)

    t0 = time.perf_counter()
    _step(console, "export to ONNX (torch.export) and check against torch")
    exported = export_onnx(model, data.x_val)
    fp32 = exported.model
    (workdir / "digits-fp32.onnx").write_bytes(fp32)
    timed("export", t0)

    t0 = time.perf_counter()
    _step(console, "quantize to int8 (QDQ, per-channel weights, calibrated on training data)")
    int8 = quantize_onnx_static(fp32, data.x_train, OnnxStaticConfig())
    (workdir / "digits-int8.onnx").write_bytes(int8)
    timed("quantize", t0)

    t0 = time.perf_counter()
    _step(console, "seal the int8 model and the test set for the device key; sign as publisher")
    package = seal(int8, publisher=publisher, devices=[device.public_key()], name="digits-int8", version=1,
                   content_format="onnx", out=workdir / "digits.eseal")
    buf = io.BytesIO()
    np.savez(buf, input=data.x_test, labels=data.y_test)
    seal(buf.getvalue(), publisher=publisher, devices=[device.public_key()], name="digits-test", kind="dataset",
         content_format="npz", out=workdir / "digits-test.eseal")
    timed("seal", t0)

    t0 = time.perf_counter()
    _step(console, "verify on the local device: a separate runtime-only process (torch not importable)")
    outputs_path = workdir / "device-outputs.npz"
    cmd = [sys.executable, "-c", _DEVICE_SHIM, "eval", "--model", str(workdir / "digits.eseal"),
           "--data", str(workdir / "digits-test.eseal"), "--key-file", str(workdir / "device.pem"),
           "--trusted", str(workdir / "publisher.pub"), "--outputs", str(outputs_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"device-side evaluation failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    device_result = json.loads(proc.stdout)
    timed("verify", t0)

    with torch.no_grad():
        host_logits = model.eval()(torch.as_tensor(data.x_test)).numpy()
    with np.load(outputs_path) as z:
        device_logits = z[z.files[0]]
    host_pred, device_pred = host_logits.argmax(1), device_logits.argmax(1)
    report = {
        "model": "digits CNN (scikit-learn load_digits, 8x8)",
        "test_samples": int(len(data.y_test)),
        "fp32_accuracy": round(float((host_pred == data.y_test).mean()), 4),
        "sealed_int8_accuracy_on_device": round(float((device_pred == data.y_test).mean()), 4),
        "top1_agreement": round(float((host_pred == device_pred).mean()), 4),
        "max_abs_logit_error": round(float(np.abs(host_logits - device_logits).max()), 4),
        "fp32_onnx_bytes": len(fp32),
        "int8_onnx_bytes": len(int8),
        "sealed_bytes": len(package),
        "package_sha256": hashlib.sha256(package).hexdigest(),
        "device": {k: device_result.get(k) for k in ("backend", "load_ms", "latency_ms", "peak_rss_mb",
                                                       "torch_imported", "metrics") if k in device_result},
        "seconds": timings,
        "files": sorted(p.name for p in workdir.iterdir()),
    }
    (workdir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    outputs_path.unlink()
    return report


def _render(report: dict[str, Any], console: Any) -> None:
    rows = [
        ("fp32 accuracy (host, torch)", f"{report['fp32_accuracy']:.4f}"),
        ("sealed int8 accuracy (device runtime)", f"{report['sealed_int8_accuracy_on_device']:.4f}"),
        ("top-1 agreement fp32 vs device", f"{report['top1_agreement']:.4f}"),
        ("max |logit error|", f"{report['max_abs_logit_error']:.4f}"),
        ("ONNX size fp32 -> int8", f"{report['fp32_onnx_bytes']:,} -> {report['int8_onnx_bytes']:,} bytes"),
        ("sealed package", f"{report['sealed_bytes']:,} bytes, sha256 {report['package_sha256'][:16]}…"),
    ]
    dev = report.get("device", {})
    for key in ("backend", "load_ms", "latency_ms", "peak_rss_mb", "torch_imported"):
        if key in dev:
            rows.append((f"device {key}", json.dumps(dev[key])))
    rows.append(("stage seconds", json.dumps(report["seconds"])))
    if console is None:
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
        return
    from rich.table import Table

    table = Table(title=f"edgeseal demo: {report['model']}, {report['test_samples']} test samples")
    table.add_column("measure")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from rich.console import Console

        console = None if args.json else Console(stderr=False)
    except ImportError:
        console = None
    report = run_demo(Path(args.workdir), epochs=args.epochs, seed=args.seed, console=console)
    if not args.json:
        _render(report, console)
        print(f"report: {Path(args.workdir) / 'report.json'}")
    return report


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo: train, quantize, seal, verify on the local device")
    p.add_argument("--workdir", default="edgeseal-demo", help="where keys, models and the report go")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
