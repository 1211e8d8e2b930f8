import sys, time, numpy as np, torch
torch.set_num_threads(1)
from pathlib import Path
C = Path("/tmp/ptq-cache")
from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set, load_efficientnet_lite0
from edgeseal.converters.export import ExportConfig, export_onnx, export_tflite
from edgeseal.converters.quantize import preprocess_onnx
from edgeseal.converters.graph_passes import fold_pad_into_conv
from edgeseal.converters.equalize import equalize_onnx
from edgeseal.converters.adaround import AdaRoundConfig, adaround_onnx
t=time.time()
calib = crop_set(CALIBRATION_PHOTOS, 200, seed=1); ev = crop_set(EVALUATION_PHOTOS, 300, seed=2)
np.save(C/"calib.npy", calib); np.save(C/"eval.npy", ev)
model = load_efficientnet_lite0()
fp32 = export_onnx(model, ev[:8], ExportConfig(opset=17, check_samples=8)).model
(C/"fp32.onnx").write_bytes(fp32); print("fp32", time.time()-t, flush=True)
pre = preprocess_onnx(fp32); pre, n = fold_pad_into_conv(pre); pre, eq = equalize_onnx(pre)
(C/"pre.onnx").write_bytes(pre); print("pre", n, eq.summary(), time.time()-t, flush=True)
tfl = export_tflite(model, ev[:8], ExportConfig(check_samples=8)).model
(C/"fp32.tflite").write_bytes(tfl); print("tfl", time.time()-t, flush=True)
ada, rep = adaround_onnx(pre, calib, AdaRoundConfig(iterations=100, samples=32))
(C/"ada100.onnx").write_bytes(ada); print("ada", rep.summary(), time.time()-t, flush=True)
import json; (C/"ada100_report.json").write_text(json.dumps(rep.to_dict()))
