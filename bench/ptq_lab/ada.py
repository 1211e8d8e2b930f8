import sys, json, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.adaround import AdaRoundConfig, adaround_onnx
it, ns, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = time.time()
pre = (C/"pre.onnx").read_bytes()
ada, rep = adaround_onnx(pre, calib, AdaRoundConfig(iterations=it, samples=ns))
(C/f"{tag}.onnx").write_bytes(ada); print(rep.summary(), time.time()-t, flush=True)
q = qdq(ada); (C/f"{tag}_q.onnx").write_bytes(q)
evaluate(q, tag)
