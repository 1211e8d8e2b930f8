"""Host side: train the digits CNN, export to ONNX, quantize to int8 and seal it for one device.

    python examples/device-app/build_model.py --out out/device-app

Writes into ``--out``: ``digits.eseal`` (the sealed int8 model), ``device.pem`` (the device's
X25519 private key, mode 0600: on a real Pi it is created there and only its public key leaves),
``publisher.pub`` (the publisher key the app trusts), ``digits_test.npz`` (the held-out test
images as raw 0..16 intensities, and labels, for clients and load tests) and ``build.json``.
This needs ``edgeseal[compress]`` (torch); the device app itself never imports torch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def build(out: Path, *, epochs: int = 10, seed: int = 0, show_progress: bool = True) -> dict:
    """Train → export → int8 → seal. Returns what was built (sizes, accuracies, paths)."""
    import edgeseal
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn
    from edgeseal.runtime import keys

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = load_digits_split(seed=seed)
    model = train_digits_cnn(data, epochs=epochs, seed=seed, show_progress=show_progress)
    fp32 = export_onnx(model, data.x_val, ExportConfig(opset=17)).model
    int8 = quantize_onnx_static(fp32, data.x_train[:256], OnnxStaticConfig())

    def accuracy(model_bytes: bytes) -> float:
        return float((runner_for(model_bytes).run_batched(data.x_test).argmax(-1) == data.y_test).mean())

    publisher, device = keys.generate_publisher_key(), keys.generate_device_key()
    keys.write_secret_file(out / "device.pem", keys.private_pem(device), overwrite=True)
    keys.write_public_key(out / "publisher.pub", publisher.public_key(), overwrite=True)
    package = edgeseal.seal(int8, publisher=publisher, devices=[device.public_key()], name="digits-int8",
                            version=1, compression_summary={"quantization": "static QDQ int8"},
                            out=out / "digits.eseal")
    # The service reads sensor-style raw intensities 0..16 (scikit-learn's scale), not the scaled floats.
    raw = np.rint(data.x_test[:, 0] * 16).astype(np.uint8)
    np.savez(out / "digits_test.npz", images=raw, labels=data.y_test)
    info = {
        "fp32_bytes": len(fp32), "int8_bytes": len(int8), "package_bytes": len(package),
        "fp32_test_accuracy": round(accuracy(fp32), 4), "int8_test_accuracy": round(accuracy(int8), 4),
        "test_images": int(len(raw)), "epochs": epochs, "seed": seed,
        "build_seconds": round(time.perf_counter() - started, 1),
        "files": {name: str(out / name) for name in
                  ("digits.eseal", "device.pem", "publisher.pub", "digits_test.npz")},
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/device-app"), help="output folder")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = build(args.out, epochs=args.epochs, seed=args.seed)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
