import sys, json; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
q = (C/"ada100_q.onnx").read_bytes(); pre = (C/"pre.onnx").read_bytes()
aq = set(act_quants(q)); qa = float_acts_clip(q, aq)
x = ev[::3]; r = ref()[::3]
def f(b): return fid(r, run(b, x))
convs = [n.output[0] for n in onnx.load_from_string(q).graph.node if n.op_type in ("Conv","Gemm")]
print("acts float, all weights float (pre)", f(float_weights_from(qa, pre, set(convs))), flush=True)
print("input+stem-out float, rest int8", f(float_acts_clip(q, {"input", "hardtanh"})), flush=True)
print("input float + stem weights float", f(float_weights_from(float_acts_clip(q, {"input"}), pre, {convs[0]})), flush=True)
res = {}
for c in convs:
    res[c] = f(float_weights_from(qa, pre, {c}))
    print("w", c, res[c], flush=True)
json.dump(res, open(C/"sens_w.json", "w"))
