import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
pre = onnx.load_from_string((C/"pre.onnx").read_bytes()); P = {i.name: i for i in pre.graph.initializer}
def restore(qb, nodes):
    p = onnx.load_from_string(qb); I = {i.name: i for i in p.graph.initializer}
    for n in p.graph.node:
        if n.name in nodes:
            for k in (1, 2):
                I[n.input[k]].CopyFrom(P[n.input[k]])
    return p.SerializeToString()
for tag, nodes in (("adaq100_qx", ("node_Conv_881",)), ("adaq100_qx2", ("node_Conv_881", "node_Conv_882"))):
    evaluate(restore((C/f"{tag}.onnx").read_bytes(), nodes), f"{tag} with {nodes} truly float (pre weights)")
