import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
m = (C/"adaq100.onnx").read_bytes()
convs = [n.name for n in onnx.load_from_string(m).graph.node if n.op_type == "Conv"]
q2 = qdq(m, exclude_nodes=tuple(convs[:2])); (C/"adaq100_qx2.onnx").write_bytes(q2)
evaluate(q2, "adaq100 stem + block0 dw float")
