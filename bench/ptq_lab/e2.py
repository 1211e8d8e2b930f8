import sys, json; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
q = (C/"ada100_q.onnx").read_bytes()
pre = (C/"pre.onnx").read_bytes()
aq = list(act_quants(q))
x = ev[::3]; r = ref()[::3]
def f(b): return fid(r, run(b, x))
print("base", f(q), flush=True)
print("all acts float", f(float_acts_clip(q, set(aq))), flush=True)
convs = [n.output[0] for n in onnx.load_from_string(q).graph.node if n.op_type in ("Conv","Gemm")]
print("ada weights fp (pre weights), acts int8", f(float_weights_from(q, pre, set(convs))), flush=True)
res = {}
for t in aq:
    res[t] = f(float_acts_clip(q, {t}))
    print("act", t, res[t], flush=True)
json.dump(res, open(C/"sens_act.json", "w"))
