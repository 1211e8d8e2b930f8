import sys, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
import torch
from edgeseal.converters.quantize import tflite_op_outputs, quantize_tflite_int8, TfliteInt8Config
from edgeseal.converters.export import ExportConfig, export_tflite
from edgeseal.converters.vision import load_efficientnet_lite0
from edgeseal.converters.infer import runner_for
src = sys.argv[1]; keep_stem = len(sys.argv) > 2 and sys.argv[2] == "stem"
BN = {"_conv_stem": "_bn0", "_conv_head": "_bn1"}
def bn_of(conv):
    if conv in BN: return BN[conv]
    blk, kind = conv.rsplit(".", 1)
    return blk + "." + {"_expand_conv": "_bn0", "_depthwise_conv": "_bn1", "_project_conv": "_bn2"}[kind]
def inject(model, onnx_bytes):
    W = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(onnx_bytes).graph.initializer}
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, w in W.items():
            if not name.endswith(".weight"): continue
            conv = name[:-len(".weight")]
            if conv == "_fc":
                mods[conv].weight.copy_(torch.from_numpy(w)); mods[conv].bias.copy_(torch.from_numpy(W["_fc.bias"])); continue
            mods[conv].weight.copy_(torch.from_numpy(w))
            bn = mods[bn_of(conv)]
            bn.running_mean.zero_(); bn.running_var.fill_(1.0 - bn.eps); bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(W[name + "_bias"]))
    return model
m = inject(load_efficientnet_lite0(), (C/f"{src}.onnx").read_bytes())
# check float model equals the onnx float model
xt = torch.from_numpy(ev[:4])
o_t = m(xt).detach().numpy(); o_o = run((C/f"{src}.onnx").read_bytes(), ev[:4])
print("torch vs onnx float", np.abs(o_t - o_o).max(), flush=True)
tfl = export_tflite(m, ev[:8], ExportConfig(check_samples=8)).model
keep = ()
if keep_stem:
    ops = tflite_op_outputs(tfl); keep = (next(n for o, n in ops if o == "CONV_2D"),)
t = time.time()
q = quantize_tflite_int8(tfl, calib, TfliteInt8Config(keep_float=keep))
(C/f"{src}_{'stem' if keep_stem else 'all'}.tflite").write_bytes(q)
out = runner_for(q).run_batched(ev, 1)
print(src, "stem float" if keep_stem else "all int8", fid(ref(), out), len(q)/len((C/"fp32.tflite").read_bytes()), flush=True)
# weight grid check
from edgeseal.converters.probe import tflite_graph  # reads the flatbuffer's tensors
it = tflite_graph(q); it.allocate_tensors()
W = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string((C/f"{src}.onnx").read_bytes()).graph.initializer}
n_chk = 0; worst = 0
for d in it.get_tensor_details():
    qp = d["quantization_parameters"]
    if d["dtype"] == np.int8 and len(qp["scales"]) > 1 and len(d["shape"]) == 4:
        try: v = it.get_tensor(d["index"]).astype(np.float64)
        except Exception: continue
        s = qp["scales"]; ax = qp["quantized_dimension"]
        sh = [1]*v.ndim; sh[ax] = -1
        ws = v * np.reshape(s, sh)
        n_chk += 1
        # grid match: compare to each onnx weight with same #elements (transposed layouts)
print("int8 4-D per-channel weight tensors", n_chk)
