import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
tag = sys.argv[1]
q = (C/f"{tag}_qx.onnx").read_bytes(); pre = (C/"pre.onnx").read_bytes()
aq = set(act_quants(q))
convs = {n.output[0] for n in onnx.load_from_string(q).graph.node if n.op_type in ("Conv","Gemm")}
evaluate(float_acts_clip(q, aq), f"{tag} weights-only int8 (acts float)")
evaluate(float_weights_from(q, pre, convs), f"{tag} acts-only int8 (pre float weights)")
