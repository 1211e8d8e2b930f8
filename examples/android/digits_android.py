"""Digits -> int8 TFLite -> seal for android-arm64 -> verify on a phone (adb:// or ssh:// into Termux).

    python examples/android/digits_android.py --device adb://SERIAL?python=PATH
    python examples/android/digits_android.py --rehearse        # no phone: the LiteRT path on this host

The phone part is UNVERIFIED (no device was available to the authors). ``--rehearse`` runs
everything else for real: it seals a second copy with no target and verifies that copy with
``--device local`` (LiteRT on this x86 host, runtime-only venv), so the TFLite package, the
sealed data set, the runner and the report are exercised; it is not evidence about a phone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", help="adb://SERIAL[?python=PATH] or ssh://user@phone:8022?python=PATH")
    ap.add_argument("--rehearse", action="store_true", help="no phone: verify an untargeted copy on this host")
    ap.add_argument("--out", default="out/android")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    if not args.device and not args.rehearse:
        ap.error("give --device adb://SERIAL (or ssh://...), or --rehearse")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import edgeseal
    from edgeseal.converters.export import export_tflite
    from edgeseal.converters.quantize import quantize_tflite_int8
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn
    from edgeseal.runtime import keys
    from edgeseal.targets import require_supported
    from edgeseal.verify import VerifyConfig, verify

    data = load_digits_split()
    model = train_digits_cnn(data, epochs=args.epochs)
    fp32 = export_tflite(model, data.x_val).model  # fixed batch 1, checked against torch
    int8 = quantize_tflite_int8(fp32, data.x_train[:256])
    check = require_supported(int8, "android-arm64")
    print(f"int8 TFLite: {len(int8):,} bytes (fp32 {len(fp32):,}); ops {check.used}")
    (out / "digits_fp32.tflite").write_bytes(fp32)

    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (out / "publisher.pem").write_bytes(keys.private_pem(pub))
    (out / "publisher.pub").write_bytes(keys.public_pem(pub.public_key()))
    (out / "phone.pem").write_bytes(keys.private_pem(dev))
    target = None if args.rehearse else "android-arm64"
    package = out / ("digits-rehearsal.eseal" if args.rehearse else "digits.eseal")
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], target=target, name="digits-int8-tflite",
                  out=package)
    input_name = edgeseal.inspect(package).manifest.inputs[0].name
    np.savez(out / "digits_test.npz", **{input_name: data.x_test[:, :, :, :]}, labels=data.y_test)

    report = verify(package, out / "digits_test.npz", VerifyConfig(
        device="local" if args.rehearse else args.device, key=out / "phone.pem", trusted=(out / "publisher.pub",),
        publisher=out / "publisher.pem", reference=out / "digits_fp32.tflite", max_drop=1.0))
    report.write(out / "report.json")
    print(report.text())
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
