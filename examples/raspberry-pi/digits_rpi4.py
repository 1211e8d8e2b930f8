"""Digits -> int8 -> seal for rpi4 -> verify on an emulated Raspberry Pi (aarch64, QEMU).

    sudo "$(command -v edgeseal)" device create qemu-rpi          # once: a few minutes, cached
    python examples/raspberry-pi/digits_rpi4.py   # needs root for the chroot (the emulated device)

Prints how the int8 model's outputs on x86 (this host) and on ARM (the emulated Pi's
real aarch64 onnxruntime kernels) compare, and writes the signed report. With
``--device ssh://pi@raspberrypi.local`` it verifies on a real Pi instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="qemu", help="qemu (default), ssh://user@host[:port], local")
    ap.add_argument("--out", default="out/raspberry-pi", help="work directory")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--max-drop", type=float, default=1.0, help="accuracy points")
    ap.add_argument("--bench", help="also write the report and a summary to bench/results/<name>.{json,md}")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import edgeseal
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn
    from edgeseal.runtime import keys
    from edgeseal.targets import get_profile, require_supported
    from edgeseal.verify import VerifyConfig, verify

    profile = get_profile("rpi4")
    q = profile.quantization
    print(f"target {profile.name}: {profile.description}; int8 {q.format.value}, weights {q.weights} "
          f"{q.weight_granularity}, activations {q.activations}; cipher {profile.cipher}")

    # 1. train and export (fp32 reference), 2. int8 as the rpi4 profile asks
    data = load_digits_split()
    model = train_digits_cnn(data, epochs=args.epochs)
    fp32 = export_onnx(model, data.x_val, ExportConfig(opset=17)).model
    int8 = quantize_onnx_static(fp32, data.x_train[:256], OnnxStaticConfig(
        per_channel=q.per_channel, activation_type=q.activations, weight_type=q.weights,
        symmetric_weights=q.weight_symmetric, symmetric_activations=q.activation_symmetric))
    (out / "digits_fp32.onnx").write_bytes(fp32)
    (out / "digits_int8.onnx").write_bytes(int8)
    check = require_supported(int8, profile)  # refuses an op the Pi's runtime cannot run, by name
    print(f"int8 model: {len(int8):,} bytes (fp32 {len(fp32):,}); ops {check.used}")
    np.savez(out / "digits_test.npz", image=data.x_test, labels=data.y_test)

    # 3. keys and the sealed package (ChaCha20-Poly1305: the Pi 4 has no AES instructions)
    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (out / "publisher.pem").write_bytes(keys.private_pem(pub))
    (out / "publisher.pub").write_bytes(keys.public_pem(pub.public_key()))
    (out / "pi.pem").write_bytes(keys.private_pem(dev))
    package = out / "digits.eseal"
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], target="rpi4", name="digits-int8", out=package)

    # 4. verify on the device: the evaluation set is sealed for the Pi too
    started = time.perf_counter()
    report = verify(package, out / "digits_test.npz", VerifyConfig(
        device=args.device, key=out / "pi.pem", trusted=(out / "publisher.pub",), publisher=out / "publisher.pem",
        reference=out / "digits_fp32.onnx", max_drop=args.max_drop))
    seconds = time.perf_counter() - started
    report.write(out / "report.json")
    print(report.text())
    arm_vs_x86 = report.data["comparison"]["device_vs_host"]
    print(f"\nx86 (host) vs {report.data['device']['machine']} (device), same int8 package: top-1 agreement "
          f"{arm_vs_x86['top1_agreement']:.4f}, max abs error {arm_vs_x86['max_abs_error']:.6g}, "
          f"bit-identical: {arm_vs_x86['identical']}  (verify took {seconds:.1f} s)")
    if args.bench:
        write_bench(Path(args.bench), report, seconds, "digits CNN, static QDQ int8 (rpi4 profile)")
    return 0 if report.passed else 1


def write_bench(stem: Path, report, seconds: float, what: str, script: str = Path(__file__).name) -> None:
    """bench/results/<stem>.json (the signed report + signature) and .md (the table)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(
        {"what": what, "verify_seconds": round(seconds, 1), "report": report.data, "signature": report.signature},
        indent=1) + "\n")
    stem.with_suffix(".md").write_text(
        f"# {stem.name}: {what}\n\nMeasured {report.data['created_at']} with `examples/raspberry-pi/{script}` "
        f"on the emulated Pi (`--device {report.data['device']['url']}`); "
        f"whole verification {seconds:.1f} s.\n\n```\n{report.text()}\n```\n")


if __name__ == "__main__":
    raise SystemExit(main())
