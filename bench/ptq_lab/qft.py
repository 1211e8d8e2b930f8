"""Lab: end-to-end fine-tuning of a QDQ int8 ONNX model's continuous parameters against the fp32 logits.

The QDQ graph itself is run in torch (fake quantization with a straight-through round); the int8 weight
integers stay fixed; learned: per-channel weight scales, biases, activation scales. Written back into the
same initializers, so ONNX Runtime runs the result.

usage: qft.py SRC_Q.onnx TAG STEPS [LR]
"""
import sys, json, time; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
import torch.nn.functional as F

torch.set_num_threads(2)


def attrs(n):
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


class QGraph(torch.nn.Module):
    def __init__(self, q: bytes):
        super().__init__()
        p = onnx.load_from_string(q); g = p.graph
        self.proto = p
        self.init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.nodes = list(g.node)
        self.input, self.output = g.input[0].name, g.output[0].name
        self.params = torch.nn.ParameterDict()
        self.key = {}
        # activation scales: one parameter per QuantizeLinear scale initializer (log scale)
        for n in self.nodes:
            if n.op_type == "QuantizeLinear" and n.input[0] not in self.init:
                s = n.input[1]
                if s not in self.key:
                    k = f"a{len(self.key)}"; self.key[s] = k
                    self.params[k] = torch.nn.Parameter(torch.tensor(np.log(float(self.init[s])), dtype=torch.float64))
        prod = {o: n for n in self.nodes for o in n.output}
        self.layers = {}
        for n in self.nodes:
            if n.op_type not in ("Conv", "Gemm"):
                continue
            w_src, b_src = n.input[1], (n.input[2] if len(n.input) > 2 else "")
            entry = {}
            if w_src in prod and prod[w_src].op_type == "DequantizeLinear":
                dq = prod[w_src]
                wq = self.init[dq.input[0]].astype(np.float64)
                ws = self.init[dq.input[1]].astype(np.float64)
                k = f"w{len(self.layers)}"
                self.params[k] = torch.nn.Parameter(torch.tensor(np.log(ws)))
                entry.update(wq=torch.tensor(wq), ws_key=k, ws_name=dq.input[1], axis=attrs(dq).get("axis", 1))
            else:
                entry.update(wf=torch.tensor(self.init[w_src].astype(np.float64)))
            if b_src:
                if b_src in prod and prod[b_src].op_type == "DequantizeLinear":
                    dq = prod[b_src]
                    b = self.init[dq.input[0]].astype(np.float64) * self.init[dq.input[1]].astype(np.float64)
                    entry.update(bq_name=dq.input[0], bs_name=dq.input[1])
                else:
                    b = self.init[b_src].astype(np.float64); entry.update(bf_name=b_src)
                kb = f"b{len(self.layers)}"
                self.params[kb] = torch.nn.Parameter(torch.tensor(b))
                entry["b_key"] = kb
            self.layers[n.output[0]] = entry
        self.dtype = torch.float32

    def qparams(self, name):
        return self.init[name]

    def forward(self, x):
        P = {k: v for k, v in self.params.items()}
        env = {self.input: x}
        dq_of = {}
        for n in self.nodes:
            t = n.op_type
            if t == "QuantizeLinear" and n.input[0] not in self.init:
                s = torch.exp(P[self.key[n.input[1]]]).to(x.dtype)
                zp = float(self.init[n.input[2]])
                lo, hi = (0, 255) if self.init[n.input[2]].dtype == np.uint8 else (-128, 127)
                v = env[n.input[0]] / s
                r = v + (torch.round(v) - v).detach()
                env[n.output[0]] = (torch.clamp(r + zp, lo, hi) - zp) * s  # already dequantized
                dq_of[n.output[0]] = True
            elif t == "DequantizeLinear":
                if n.input[0] in dq_of:
                    env[n.output[0]] = env[n.input[0]]
                # weight / bias DQs are handled by the layer
            elif t in ("Conv", "Gemm"):
                L = self.layers[n.output[0]]
                if "wq" in L:
                    s = torch.exp(P[L["ws_key"]])
                    sh = [1] * L["wq"].ndim; sh[L["axis"]] = -1
                    w = (L["wq"] * s.reshape(sh)).to(x.dtype)
                else:
                    w = L["wf"].to(x.dtype)
                b = P[L["b_key"]].to(x.dtype) if "b_key" in L else None
                xi = env[n.input[0]]
                a = attrs(n)
                if t == "Conv":
                    pads = a.get("pads", [0, 0, 0, 0])
                    if pads[0] != pads[2] or pads[1] != pads[3]:
                        xi = F.pad(xi, (pads[1], pads[3], pads[0], pads[2])); pad = 0
                    else:
                        pad = (pads[0], pads[1])
                    env[n.output[0]] = F.conv2d(xi, w, b, stride=tuple(a.get("strides", [1, 1])), padding=pad,
                                                dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
                else:
                    if a.get("transA", 0): xi = xi.t()
                    if a.get("transB", 0): w = w.t()
                    y = xi @ w
                    env[n.output[0]] = y + b if b is not None else y
            elif t == "Add":
                env[n.output[0]] = env[n.input[0]] + env[n.input[1]]
            elif t == "Clip":
                lo = float(self.init[n.input[1]]) if len(n.input) > 1 and n.input[1] else None
                hi = float(self.init[n.input[2]]) if len(n.input) > 2 and n.input[2] else None
                env[n.output[0]] = torch.clamp(env[n.input[0]], lo, hi)
            elif t == "ReduceMean":
                axes = [int(v) for v in self.init[n.input[1]]] if len(n.input) > 1 else attrs(n)["axes"]
                env[n.output[0]] = env[n.input[0]].mean(dim=axes, keepdim=bool(attrs(n).get("keepdims", 1)))
            elif t == "Reshape":
                env[n.output[0]] = env[n.input[0]].reshape([int(v) for v in self.init[n.input[1]]])
            else:
                raise NotImplementedError(t)
        return env[self.output]

    def export(self) -> bytes:
        P = {k: v.detach().double().numpy() for k, v in self.params.items()}
        p = onnx.ModelProto(); p.CopyFrom(self.proto); g = p.graph
        ip = {i.name: i for i in g.initializer}
        def put(name, arr):
            ip[name].CopyFrom(numpy_helper.from_array(arr, name))
        act = {s: np.float32(np.exp(P[k])) for s, k in self.key.items()}
        for s, v in act.items():
            put(s, np.array(v, np.float32))
        for n in self.nodes:
            if n.op_type not in ("Conv", "Gemm"):
                continue
            L = self.layers[n.output[0]]
            ws = None
            if "wq" in L:
                ws = np.exp(P[L["ws_key"]]).astype(np.float32); put(L["ws_name"], ws)
            if "b_key" in L:
                b = P[L["b_key"]]
                if "bq_name" in L:
                    # bias scale = input scale x weight scale, as ONNX Runtime's QLinearConv assumes
                    src = n.input[0]
                    dq = next(m for m in self.nodes if m.output[0] == src)
                    sx = act[dq.input[1]] if dq.input[1] in act else np.float32(self.init[dq.input[1]])
                    bs = (np.float32(sx) * ws).astype(np.float32)
                    put(L["bs_name"], bs)
                    put(L["bq_name"], np.clip(np.round(b / bs.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32))
                else:
                    put(L["bf_name"], b.astype(np.float32))
        return p.SerializeToString()


def main():
    src, tag, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lra, lrw, lrb = (float(v) for v in sys.argv[4].split(",")) if len(sys.argv) > 4 else (1e-4, 1e-4, 1e-4)
    ntrain = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    every = int(sys.argv[6]) if len(sys.argv) > 6 else 50
    q = Path(src).read_bytes()
    m = QGraph(q)
    # 1. the emulator against ONNX Runtime on 32 calibration crops
    with torch.no_grad():
        ort_o = run(q, calib[:32])
        em = m(torch.tensor(calib[:32])).numpy()
    print("emulator vs ORT:", fid(ort_o, em), "max abs", float(np.abs(ort_o - em).max()), flush=True)
    # 2. training crops: other crops of the calibration photos; calib.npy (seed 1) is the validation set
    from edgeseal.converters.vision import CALIBRATION_PHOTOS, crop_set
    tp = C / f"train{ntrain}.npy"
    if not tp.exists():
        np.save(tp, crop_set(CALIBRATION_PHOTOS, ntrain, seed=7))
    xt = np.load(tp)
    tl = C / f"train{ntrain}_ref.npy"
    if not tl.exists():
        np.save(tl, run((C / "fp32.onnx").read_bytes(), xt))
    yt = np.load(tl)
    rc = ref_calib()
    base = fid(rc, run(q, calib)); print("start, validation (calib.npy):", base, flush=True)
    groups = [{"params": [v for k, v in m.params.items() if k[0] == c], "lr": lr} for c, lr in zip("awb", (lra, lrw, lrb)) if lr > 0]
    for gr in groups: gr["base"] = gr["lr"]
    for k, v in m.params.items():
        v.requires_grad_(any(v is p for gr in groups for p in gr["params"]))
    opt = torch.optim.Adam(groups)
    rng = np.random.default_rng(0)
    bs = 16; T = 1.0
    t0 = time.time(); best = (base["sqnr"], 0, m.export())
    for step in range(1, steps + 1):
        i = rng.choice(len(xt), bs, replace=False)
        x = torch.tensor(xt[i]); y = torch.tensor(yt[i])
        o = m(x)
        loss = F.kl_div(F.log_softmax(o / T, 1), F.log_softmax(y / T, 1), log_target=True, reduction="batchmean") \
            + 0.01 * F.mse_loss(o, y)
        opt.zero_grad(); loss.backward(); opt.step()
        for g_ in opt.param_groups:
            g_["lr"] = g_["base"] * 0.5 * (1 + np.cos(np.pi * step / steps))
        if step % 10 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
        if step % every == 0 or step == steps:
            b = m.export()
            f = fid(rc, run(b, calib)); print("  validation:", f, flush=True)
            if f["sqnr"] > best[0]:
                best = (f["sqnr"], step, b)
    print("best validation sqnr", best[0], "at step", best[1], flush=True)
    (C / f"{tag}.onnx").write_bytes(best[2])
    evaluate(best[2], f"{tag} eval (best validation step {best[1]})")
    evaluate(q, f"{src} eval (start)")


if __name__ == "__main__":
    main()
