"""Lab: AdaRound on the 1/8 entropy-coded grid of EfficientNet-Lite0 (issue 14). usage: gar.py ITER SAMPLES [CAP]"""
import sys, time, json, pickle, warnings
import numpy as np, torch
from pathlib import Path
warnings.simplefilter("ignore")
torch.set_num_threads(2)
import edgeseal
from edgeseal.converters import cluster as cl
from edgeseal.converters.adaround import AdaRoundConfig
from edgeseal.converters.infer import runner_for
from edgeseal.converters.vision import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, crop_set
it, ns = int(sys.argv[1]), int(sys.argv[2])
cap = int(sys.argv[3]) if len(sys.argv) > 3 else 2_244_255
O = Path("/tmp/gar")
t0 = time.time()
selection = crop_set(CALIBRATION_PHOTOS, 100, seed=1)
evaluation = crop_set(EVALUATION_PHOTOS, 200, seed=2)
fp32 = Path("/tmp/ptq-cache/fp32.onnx").read_bytes()
ref_sel = runner_for(fp32).run_batched(selection, 32)
ref_eval = runner_for(fp32).run_batched(evaluation, 32)
def fid(m, x, r):
    o = runner_for(m).run_batched(x, 32)
    return round(100 * float((o.argmax(-1) == r.argmax(-1)).mean()), 1), round(float(10 * np.log10((r**2).sum() / ((r - o)**2).sum())), 2)
pub, dev = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
def sealed(m):
    return len(edgeseal.seal(cl.codebook_model(m), publisher=pub, devices=[dev.public_key()], compression="zlib",
                             content_format="onnx+codebook", now=1_700_000_000.0))
gp = O / f"grids_{cap}.pkl"
if gp.exists():
    base, grids = pickle.loads(gp.read_bytes())
else:
    cfg = cl.ClusterConfig(method="grid", max_drop=0.0, probe_samples=16, min_params=256, max_bytes=cap)
    base, rep, grids = cl.cluster_onnx(fp32, selection, lambda m: 100 * float((runner_for(m).run_batched(selection, 32).argmax(-1) == ref_sel.argmax(-1)).mean()), cfg, reference_score=100.0)
    gp.write_bytes(pickle.dumps((base, grids)))
print("grid 1/8 (nearest):", "records", sum(cl.grid_record_bytes(g) for g in grids.values()), "sealed", sealed(base), "sel", fid(base, selection, ref_sel), "eval", fid(base, evaluation, ref_eval), f"{time.time()-t0:.0f}s", flush=True)
calib = crop_set(CALIBRATION_PHOTOS, ns, seed=3)
new, rep = cl.adaround_grids(fp32, grids, calib, AdaRoundConfig(iterations=it, samples=ns))
m = cl.grid_model(fp32, new)
print(rep.summary(), flush=True)
print(f"grid 1/8 + AdaRound {it}x{ns}:", "records", sum(cl.grid_record_bytes(g) for g in new.values()), "sealed", sealed(m), "fp32/8", len(fp32) // 8, "sel", fid(m, selection, ref_sel), "eval", fid(m, evaluation, ref_eval), f"{time.time()-t0:.0f}s", flush=True)
(O / f"ada_{it}_{ns}_{cap}.onnx").write_bytes(m)
