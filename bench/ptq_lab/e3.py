import sys, json; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
name = sys.argv[1] if len(sys.argv) > 1 else "ada100"
m = (C/f"{name}.onnx").read_bytes(); q = (C/f"{name}_q.onnx").read_bytes()
rng0 = get_ranges(q); ts = list(rng0)
gen = np.random.default_rng(0)
acts = {t: [] for t in ts}
for i in range(0, 64, 16):
    a = collect(m, ts, calib[i:i+16])
    for t in ts:
        v = a[t].ravel(); acts[t].append(v[gen.integers(0, len(v), min(len(v), 200000))])
acts = {t: np.concatenate(v) for t, v in acts.items()}
def qerr(v, lo, hi):
    sc = (hi - lo) / 255; zp = np.clip(np.round(-lo / sc), 0, 255)
    d = (np.clip(np.round(v / sc) + zp, 0, 255) - zp) * sc
    return float(((d - v) ** 2).mean())
mse = {}
for t in ts:
    lo, hi = rng0[t]; v = acts[t]
    best = (qerr(v, lo, hi), lo, hi)
    if lo >= -1e-6:
        for a in np.linspace(0.2, 1, 41): best = min(best, (qerr(v, 0.0, hi*a), 0.0, hi*a))
    else:
        for a in np.linspace(0.3, 1, 15):
            for b in np.linspace(0.3, 1, 15): best = min(best, (qerr(v, lo*a, hi*b), lo*a, hi*b))
    mse[t] = (float(best[1]), float(best[2]))
    print(t, "minmax", (round(lo,3), round(hi,3)), "mse", (round(best[1],3), round(best[2],3)), "err ratio", round(best[0]/qerr(v, lo, hi), 3))
json.dump(mse, open(C/f"{name}_mse_ranges.json", "w"))
qm = set_ranges(q, mse); (C/f"{name}_q_mse.onnx").write_bytes(qm)
evaluate(qm, f"{name} mse ranges (all 300)")
