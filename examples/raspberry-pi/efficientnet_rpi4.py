"""EfficientNet-Lite0 int8 -> sealed for rpi4 -> verified on the emulated Raspberry Pi 4 (aarch64, QEMU).

    sudo edgeseal device create qemu-rpi                          # once
    python examples/efficientnet/run.py --out out/efficientnet    # builds the fp32 and int8 ONNX files
    python examples/raspberry-pi/efficientnet_rpi4.py --from out/efficientnet [--evaluation 60] \\
        [--bench bench/results/verify_qemu_efficientnet]

Seals the int8 model for rpi4 (ChaCha20-Poly1305: the Pi 4 has no AES instructions) with its
preprocessing and class names, then runs ``edgeseal verify --device qemu`` on evaluation crops of
the evaluation photos: the report gives device (ARM) vs host (x86) top-1 agreement and max abs
difference for the same package, and the fidelity to the fp32 model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_rpi4 import write_bench  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", default="out/efficientnet", help="folder with efficientnet_lite0{,.int8}.onnx")
    ap.add_argument("--device", default="qemu")
    ap.add_argument("--target", default="rpi4")
    ap.add_argument("--evaluation", type=int, default=60, help="evaluation crops (emulated ARM is slow)")
    ap.add_argument("--min-agreement", type=float, default=0.95)
    ap.add_argument("--bench", help="also write the report to bench/results/<name>.{json,md}")
    args = ap.parse_args()
    src = Path(args.src)
    out = src / args.target
    out.mkdir(parents=True, exist_ok=True)

    import edgeseal
    from edgeseal.converters.vision import EFFICIENTNET_PREPROCESS, EVALUATION_PHOTOS, crop_set, imagenet_labels
    from edgeseal.runtime import keys
    from edgeseal.runtime.fidelity import FidelityBudget
    from edgeseal.runtime.preprocess import labels_metadata
    from edgeseal.targets import require_supported
    from edgeseal.verify import VerifyConfig, verify

    int8 = (src / "efficientnet_lite0.int8.onnx").read_bytes()
    require_supported(int8, args.target)
    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (out / "publisher.pem").write_bytes(keys.private_pem(pub))
    (out / "publisher.pub").write_bytes(keys.public_pem(pub.public_key()))
    (out / "pi.pem").write_bytes(keys.private_pem(dev))
    package = out / "efficientnet_lite0.eseal"
    meta = {**EFFICIENTNET_PREPROCESS.to_metadata(), **labels_metadata(imagenet_labels())}
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], target=args.target, name="efficientnet-lite0-int8",
                  metadata=meta, out=package)
    np.savez(out / "evaluation.npz", input=crop_set(EVALUATION_PHOTOS, args.evaluation, seed=2))
    started = time.perf_counter()
    report = verify(package, out / "evaluation.npz", VerifyConfig(
        device=args.device, key=out / "pi.pem", trusted=(out / "publisher.pub",), publisher=out / "publisher.pem",
        reference=src / "efficientnet_lite0.onnx", fidelity=FidelityBudget(min_agreement=args.min_agreement)))
    seconds = time.perf_counter() - started
    report.write(out / "report.json")
    print(report.text())
    vs_host = report.data["comparison"]["device_vs_host"]
    print(f"\nx86 (host) vs {report.data['device']['machine']} (device), same int8 package: max abs difference "
          f"{vs_host['max_abs_error']:.6g}, bit-identical: {vs_host['identical']}  (verify took {seconds:.1f} s)")
    if args.bench:
        write_bench(Path(args.bench), report, seconds, f"EfficientNet-Lite0 int8 ({args.evaluation} evaluation crops, "
                    f"{args.target} profile)", script=Path(__file__).name)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
