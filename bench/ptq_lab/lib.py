import time, numpy as np, onnx, onnxruntime as ort, torch
from onnx import numpy_helper
from pathlib import Path
torch.set_num_threads(1)
C = Path("/tmp/ptq-cache")
calib = np.load(C/"calib.npy"); ev = np.load(C/"eval.npy")

def sess(b):
    from edgeseal.converters.probe import intermediate_session
    return intermediate_session(b)  # optimizations off: ORT's BASIC passes mis-run DQ->Conv(float W) graphs

def run(b, x, bs=32, outputs=None):
    s = sess(b); name = s.get_inputs()[0].name
    outs = []
    for i in range(0, len(x), bs):
        outs.append(s.run(outputs, {name: x[i:i+bs]}))
    return [np.concatenate(o) for o in zip(*outs)] if outputs else np.concatenate([o[0] for o in outs])

def ref():
    p = C/"ref.npy"
    if not p.exists(): np.save(p, run((C/"fp32.onnx").read_bytes(), ev))
    return np.load(p)

def ref_calib():
    p = C/"ref_calib.npy"
    if not p.exists(): np.save(p, run((C/"fp32.onnx").read_bytes(), calib))
    return np.load(p)

def fid(r, o):
    agree = float((r.argmax(1) == o.argmax(1)).mean())
    sq = 10*np.log10((r**2).sum() / ((r-o)**2).sum())
    t5 = np.argsort(-r, 1)[:, :5]; o5 = np.argsort(-o, 1)[:, :5]
    ov = np.mean([len(set(a) & set(b))/5 for a, b in zip(t5, o5)])
    return dict(agree=round(agree, 4), sqnr=round(float(sq), 2), top5=round(float(ov), 4), n_dis=int((r.argmax(1) != o.argmax(1)).sum()))

def evaluate(b, label="", x=None):
    t = time.time()
    o = run(b, ev if x is None else x)
    f = fid(ref() if x is None else ref_calib(), o)
    print(f"{label}: {f} size={len(b)/18554045:.4f} ({time.time()-t:.0f}s)", flush=True)
    return f

def qdq(model, n=200, **cfg):
    from edgeseal.converters.quantize import quantize_onnx_static, OnnxStaticConfig
    from edgeseal.converters.graph_passes import float_graph_outputs, strip_debug_info, drop_zero_weight_zero_points
    q = quantize_onnx_static(model, calib[:n], OnnxStaticConfig(preprocess=False, samples=n, **cfg))
    q, _ = float_graph_outputs(q)
    q, _ = drop_zero_weight_zero_points(strip_debug_info(q))
    return q

def act_quants(q):
    """activation tensor -> (scale init name, zp init name)"""
    p = onnx.load_from_string(q); g = p.graph
    inits = {i.name for i in g.initializer}
    return {n.input[0]: (n.input[1], n.input[2]) for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}

def get_ranges(q):
    p = onnx.load_from_string(q); inits = {i.name: numpy_helper.to_array(i) for i in p.graph.initializer}
    out = {}
    for t, (s, z) in act_quants(q).items():
        sc, zp = float(inits[s]), int(inits[z])
        qmin, qmax = (0, 255) if inits[z].dtype == np.uint8 else (-128, 127)
        out[t] = ((qmin-zp)*sc, (qmax-zp)*sc)
    return out

def set_ranges(q, ranges):
    p = onnx.load_from_string(q); g = p.graph
    aq = act_quants(q); ip = {i.name: i for i in g.initializer}
    for t, (lo, hi) in ranges.items():
        s, z = aq[t]
        zt = numpy_helper.to_array(ip[z]).dtype
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        if zt == np.uint8:
            sc = (hi - lo) / 255; zp = np.uint8(np.clip(round(-lo / sc), 0, 255))
        else:
            sc = max(hi, -lo) / 127; zp = np.int8(0)
        ip[s].CopyFrom(numpy_helper.from_array(np.array(sc, np.float32), s))
        ip[z].CopyFrom(numpy_helper.from_array(np.array(zp, zt), z))
    return p.SerializeToString()

def float_acts(q, tensors):
    """remove the Q->DQ pair on the given activation tensors"""
    p = onnx.load_from_string(q); g = p.graph
    prod = {o: n for n in g.node for o in n.output}
    drop, ren = set(), {}
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in tensors:
            for m in g.node:
                if m.op_type == "DequantizeLinear" and m.input[0] == n.output[0]:
                    drop.add(id(m)); ren[m.output[0]] = n.input[0]
            drop.add(id(n))
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep: n.input[:] = [ren.get(i, i) for i in n.input]
    outs = {o.name for o in g.output}
    del g.node[:]; g.node.extend(keep)
    return p.SerializeToString()

def float_weights(q, nodes_out):
    """replace DQ(weight) by the float weight for DQs feeding the given Conv/Gemm nodes (by node output name)"""
    p = onnx.load_from_string(q); g = p.graph
    ip = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    drop = set()
    for n in g.node:
        if n.op_type in ("Conv", "Gemm") and n.output[0] in nodes_out:
            for k in (1, 2):
                if len(n.input) > k and n.input[k] in prod and prod[n.input[k]].op_type == "DequantizeLinear":
                    dq = prod[n.input[k]]
                    if dq.input[0] in ip:
                        w = numpy_helper.to_array(ip[dq.input[0]]).astype(np.float64)
                        s = numpy_helper.to_array(ip[dq.input[1]]).astype(np.float64)
                        zp = numpy_helper.to_array(ip[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 and dq.input[2] else 0
                        ax = 0
                        for a in dq.attribute:
                            if a.name == "axis": ax = a.i
                        sh = [1]*w.ndim; sh[ax] = -1
                        wf = ((w - (np.reshape(zp, sh) if np.ndim(zp) else zp)) * (np.reshape(s, sh) if np.ndim(s) else s)).astype(np.float32)
                        name = dq.output[0] + "_f"
                        g.initializer.append(numpy_helper.from_array(wf, name)); n.input[k] = name
    return p.SerializeToString()

def collect(model, tensors, x, bs=16):
    """run the float model returning the given intermediate tensors"""
    p = onnx.load_from_string(model); g = p.graph
    have = {o.name for o in g.output}
    for t in tensors:
        if t not in have: g.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    names = list(tensors)
    return dict(zip(names, run(p.SerializeToString(), x, bs, outputs=names)))

def float_acts_clip(q, tensors):
    """replace the Q->DQ pair on the given activation tensors by Clip(lo, hi) of their range (float, no rounding)"""
    rng = get_ranges(q)
    p = onnx.load_from_string(q); g = p.graph
    nodes = list(g.node)
    qs = {n.output[0]: n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in tensors}
    out = []
    for n in nodes:
        if n.op_type == "QuantizeLinear" and n.output[0] in qs:
            continue
        if n.op_type == "DequantizeLinear" and n.input[0] in qs:
            src = qs[n.input[0]].input[0]; lo, hi = rng[src]
            lon, hin = n.output[0] + "_lo", n.output[0] + "_hi"
            g.initializer.extend([numpy_helper.from_array(np.array(lo, np.float32), lon), numpy_helper.from_array(np.array(hi, np.float32), hin)])
            out.append(onnx.helper.make_node("Clip", [src, lon, hin], [n.output[0]]))
            continue
        c = onnx.NodeProto(); c.CopyFrom(n); out.append(c)
    del g.node[:]; g.node.extend(out)
    return p.SerializeToString()

def float_weights_from(q, src, nodes_out):
    """use src model's float weights/biases (by name) for the given Conv/Gemm nodes"""
    sp = {i.name: i for i in onnx.load_from_string(src).graph.initializer}
    p = onnx.load_from_string(q); g = p.graph
    prod = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.op_type in ("Conv", "Gemm") and n.output[0] in nodes_out:
            for k in (1, 2):
                if len(n.input) > k and n.input[k] in prod and prod[n.input[k]].op_type == "DequantizeLinear":
                    base = prod[n.input[k]].input[0].removesuffix("_quantized")
                    t = onnx.TensorProto(); t.CopyFrom(sp[base]); t.name = base + "_src"
                    g.initializer.append(t); n.input[k] = t.name
    return p.SerializeToString()
