import sys, json, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.adaround import AdaRoundConfig, adaround_onnx
from edgeseal.converters.ranges import activation_ranges
it, ns, tag, nfloat = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t = time.time()
pre = (C/"pre.onnx").read_bytes()
convs = [n.name for n in onnx.load_from_string(pre).graph.node if n.op_type in ("Conv", "Gemm")]
fl = tuple(convs[:nfloat])
q0 = qdq(pre, exclude_nodes=fl)
rng = activation_ranges(q0)
ada, rep = adaround_onnx(pre, calib, AdaRoundConfig(iterations=it, samples=ns, layers=tuple(c for c in convs if c not in fl)), activation_ranges=rng)
(C/f"{tag}.onnx").write_bytes(ada); print(rep.summary(), time.time()-t, flush=True)
q = qdq(ada, exclude_nodes=fl); (C/f"{tag}_q.onnx").write_bytes(q)
evaluate(q, f"{tag} float {fl}")
