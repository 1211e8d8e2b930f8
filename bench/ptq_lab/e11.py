import sys, json; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
q = (C/"adaqf2_q.onnx").read_bytes()
aq = list(act_quants(q))
x = ev[::3]; r = ref()[::3]
def f(b): return fid(r, run(b, x))
print("base", f(q), len(aq), flush=True)
res = {}
for t in aq:
    res[t] = f(float_acts_clip(q, {t}))
    print("act", t, res[t], flush=True)
json.dump(res, open(C/"sens_act2.json", "w"))
