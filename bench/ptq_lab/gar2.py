"""Lab (issue 14): AdaRound on the cached 1/8 grid with calibration crops that include three more natural photos that
ship in installed wheels (scikit-learn's china.jpg and flower.jpg, matplotlib's grace_hopper.jpg).
usage: gar2.py ITER SAMPLES {base|extra}"""
import sys, time, pickle, warnings
import numpy as np, torch
from pathlib import Path
warnings.simplefilter("ignore")
torch.set_num_threads(2)
from PIL import Image
from edgeseal.converters import cluster as cl, vision
from edgeseal.converters.adaround import AdaRoundConfig
from edgeseal.converters.infer import runner_for
it, ns, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
EXTRA = {}
import sklearn.datasets as skd, matplotlib.cbook as cbook
for n in ("china.jpg", "flower.jpg"):
    EXTRA[n] = Image.fromarray(skd.load_sample_image(n))
with cbook.get_sample_data("grace_hopper.jpg") as f:
    EXTRA["grace_hopper.jpg"] = Image.open(f).convert("RGB")
orig = vision.photo
vision.photo = lambda name: EXTRA[name].copy() if name in EXTRA else orig(name)
photos = vision.CALIBRATION_PHOTOS + (tuple(EXTRA) if which == "extra" else ())
selection = vision.crop_set(vision.CALIBRATION_PHOTOS, 100, seed=1)
evaluation = vision.crop_set(vision.EVALUATION_PHOTOS, 200, seed=2)
fp32 = Path("/tmp/ptq-cache/fp32.onnx").read_bytes()
ref_sel = runner_for(fp32).run_batched(selection, 32)
ref_eval = runner_for(fp32).run_batched(evaluation, 32)
def fid(m, x, r):
    o = runner_for(m).run_batched(x, 32)
    return round(100 * float((o.argmax(-1) == r.argmax(-1)).mean()), 1), round(float(10 * np.log10((r**2).sum() / ((r - o)**2).sum())), 2)
base, grids = pickle.loads(Path("/tmp/gar/grids_2244255.pkl").read_bytes())
calib = vision.crop_set(photos, ns, seed=3)
rng = np.random.default_rng(0); calib = calib[rng.permutation(len(calib))]  # photos mixed across the first samples
t0 = time.time()
new, rep = cl.adaround_grids(fp32, grids, calib, AdaRoundConfig(iterations=it, samples=ns))
m = cl.grid_model(fp32, new)
print(f"{which} photos={len(photos)} AdaRound {it}x{ns}: {rep.summary()} sel {fid(m, selection, ref_sel)} eval {fid(m, evaluation, ref_eval)} {time.time()-t0:.0f}s", flush=True)
