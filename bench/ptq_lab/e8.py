import sys, json; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.adaround import int8_grid
import onnxruntime as ort
pre = (C/"pre.onnx").read_bytes(); ada = onnx.load_from_string((C/"adaq100.onnx").read_bytes())
adaW = {i.name: numpy_helper.to_array(i) for i in ada.graph.initializer}
p = onnx.load_from_string(pre); g = p.graph
W = {i.name: i for i in g.initializer}
convs = [(n.name, n.input[1], n.op_type, n.attribute) for n in g.node if n.op_type in ("Conv", "Gemm")]
x = ev[::3]; r = ref()[::3]
def runf(b):  # optimizations on, one thread: the one host runner
    from edgeseal.converters.infer import runner_for
    return runner_for(b).run_batched(x, 25)
res = {}
for name, wn, op, _ in convs:
    orig = numpy_helper.to_array(W[wn])
    ax = 0
    s = int8_grid(orig.astype(np.float64), ax)
    W[wn].CopyFrom(numpy_helper.from_array((np.clip(np.round(orig / s), -127, 127) * s).astype(np.float32), wn))
    f = fid(r, runf(p.SerializeToString()))
    W[wn].CopyFrom(numpy_helper.from_array(orig, wn))
    e = 10 ** (-f["sqnr"] / 10)
    res[name] = (wn, orig.size, f["sqnr"], e)
    print(name, wn, orig.shape, f["sqnr"], flush=True)
json.dump(res, open(C/"sens_w1.json", "w"))
tot = sum(v[3] for v in res.values())
print("sum of single-layer error powers", tot, "-> dB", -10*np.log10(tot))
for k, v in sorted(res.items(), key=lambda kv: -kv[1][3])[:10]: print(k, v[0], v[1], v[2], round(v[3]/tot, 3))
