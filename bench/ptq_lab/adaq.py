import sys, json, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.adaround import AdaRoundConfig, adaround_onnx
from edgeseal.converters.ranges import activation_ranges
it, ns, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = time.time()
pre = (C/"pre.onnx").read_bytes()
stem = [n for n in onnx.load_from_string(pre).graph.node if n.op_type == "Conv"][0].name
q0 = qdq(pre, exclude_nodes=(stem,))
rng = activation_ranges(q0); print(len(rng), "ranges", "input" in rng, flush=True)
ada, rep = adaround_onnx(pre, calib, AdaRoundConfig(iterations=it, samples=ns), activation_ranges=rng)
(C/f"{tag}.onnx").write_bytes(ada); print(rep.summary(), time.time()-t, flush=True)
q = qdq(ada, exclude_nodes=(stem,)); (C/f"{tag}_qx.onnx").write_bytes(q)
evaluate(q, tag + " stem float")
