"""The EfficientNet-Lite0 flagship end to end, kept small: int8 ONNX from a few calibration crops, sealed
with its preprocessing and class names, then ``edgeseal run --image`` on two bundled photos.

The full figures (200 calibration / 300 evaluation crops, all variants, speed) are
bench/efficientnet_int8.py's; this test checks the pieces fit and the answers are right.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="needs the [examples] extra")
pytest.importorskip("skimage", reason="needs the [examples] extra")

pytestmark = [pytest.mark.examples, pytest.mark.slow]


@pytest.fixture(scope="module")
def flagship(tmp_path_factory):
    import torch

    import edgeseal
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.ptq import quantize_onnx_corrected
    from edgeseal.converters.vision import (CALIBRATION_PHOTOS, EFFICIENTNET_PREPROCESS, EVALUATION_PHOTOS, crop_set,
                                            imagenet_labels, load_efficientnet_lite0)
    from edgeseal.runtime import keys
    from edgeseal.runtime.preprocess import labels_metadata

    torch.set_num_threads(2)
    d = tmp_path_factory.mktemp("efficientnet")
    calib = crop_set(CALIBRATION_PHOTOS, 20, seed=1)
    evaluation = crop_set(EVALUATION_PHOTOS, 18, seed=2)
    assert not set(CALIBRATION_PHOTOS) & set(EVALUATION_PHOTOS)
    fp32 = export_onnx(load_efficientnet_lite0(), evaluation[:2], ExportConfig(opset=17, check_samples=2)).model
    int8, report = quantize_onnx_corrected(fp32, calib, bias_samples=16)
    pub, dev = keys.generate_publisher_key(), keys.generate_device_key()
    (d / "pub.pub").write_bytes(keys.public_pem(pub.public_key()))
    (d / "dev.pem").write_bytes(keys.private_pem(dev))
    meta = {**EFFICIENTNET_PREPROCESS.to_metadata(), **labels_metadata(imagenet_labels())}
    edgeseal.seal(int8, publisher=pub, devices=[dev.public_key()], name="efficientnet-lite0-int8", metadata=meta,
                  target="linux-x86_64", out=d / "model.eseal")
    return {"dir": d, "fp32": fp32, "int8": int8, "report": report, "evaluation": evaluation}


def test_int8_is_small_and_follows_fp32(flagship):
    from edgeseal.converters.infer import OnnxRunner
    from edgeseal.runtime.fidelity import fidelity

    fp32, int8, ev = flagship["fp32"], flagship["int8"], flagship["evaluation"]
    assert len(int8) <= 0.27 * len(fp32)
    assert flagship["report"].bias_correction.final_residual < flagship["report"].bias_correction.residual[0]
    assert flagship["report"].float_outputs == 1  # the logits are not re-quantized to 8 bits
    import onnx

    g = onnx.load_from_string(int8).graph
    producer = {o: n for n in g.node for o in n.output}
    assert producer[g.output[0].name].op_type == "Gemm"
    f = fidelity(OnnxRunner(fp32).run_batched(ev), OnnxRunner(int8).run_batched(ev))
    assert f.top1_agreement >= 0.75 and f.sqnr_db > 12.0  # a handful of crops and 20 calibration crops


@pytest.mark.parametrize("photo,cls", [("chelsea", 285), ("coffee", 967)])
def test_run_image_names_the_photo(flagship, photo, cls):
    from edgeseal.converters.vision import imagenet_labels, photo_path

    d = flagship["dir"]
    proc = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "run", "model.eseal", "--image",
                           str(photo_path(photo)), "--key", "dev.pem", "--trusted", "pub.pub"],
                          cwd=d, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    top = json.loads(proc.stdout)["top"]
    assert top[0]["class"] == cls and top[0]["label"] == imagenet_labels()[cls]
    assert len(top) == 5 and np.all(np.diff([t["probability"] for t in top]) <= 0)
