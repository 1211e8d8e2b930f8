import sys, json, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
m = (C/"ada100.onnx").read_bytes()
stem = [n for n in onnx.load_from_string(m).graph.node if n.op_type == "Conv"][0].name
print("stem", stem)
qx = qdq(m, exclude_nodes=(stem,)); (C/"ada100_qx.onnx").write_bytes(qx)
g = onnx.load_from_string(qx).graph
for n in g.node[:8]: print(n.op_type, list(n.input)[:2], list(n.output))
evaluate(qx, "stem excluded (DISABLE_ALL)")
def sess_full(b):  # optimizations on, one thread: the one host runner
    from edgeseal.converters.infer import runner_for
    return runner_for(b)
q = (C/"ada100_q.onnx").read_bytes(); fp = (C/"fp32.onnx").read_bytes()
S = {"fp32": sess_full(fp), "q": sess_full(q), "qx": sess_full(qx)}
o = np.concatenate([S["qx"].run(ev[i:i+32]) for i in range(0, 300, 32)])
print("stem excluded fused", fid(ref(), o))
T = {k: [] for k in S}
for i in range(150):
    for k in (list(S)[i % 3:] + list(S)[:i % 3]):
        t = time.perf_counter(); S[k].run(ev[i:i+1]); T[k].append(time.perf_counter() - t)
p = {k: np.median(v) * 1e3 for k, v in T.items()}
print({k: round(v, 2) for k, v in p.items()}, "speedup q", p["fp32"]/p["q"], "qx", p["fp32"]/p["qx"])
