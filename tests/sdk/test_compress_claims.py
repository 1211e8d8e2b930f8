"""Every claim ``edgeseal compress`` prints, cross-checked against plain ONNX Runtime / LiteRT.

Four architectures built here (conv + BatchNorm, depthwise-separable with ReLU6, a GRU,
a transformer encoder layer), trained briefly on scikit-learn's digits with a fixed seed.
For each, the report's float ops, sizes, accuracy and the sign of its speed ratio are
compared with what an independent measurement finds:

* float ops: the graph ONNX Runtime actually runs (its optimized model, where QDQ
  groups became integer kernels) — every Conv/Gemm/MatMul/GRU left there computes in
  float; TFLite: op output dtypes;
* accuracy: a bare ``InferenceSession`` / LiteRT ``Interpreter`` on the eval set;
* speed: the returned model and the fp32 export timed interleaved with bare sessions.

Also the misleading cases of the trial, each as a test: a 0.0 budget returns the best
attempt and exits 1; pruning counts against the same budget; structured pruning that
cannot touch a recurrent model is an error naming the layer; a recipe typo is reported
before any work; exported ONNX carries no debug metadata.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn

from edgeseal.compress import compress  # noqa: E402
from edgeseal.compress.recipe import CompressRecipe, ExportStage, PruneStage, QuantizeStage, load_recipe  # noqa: E402
from edgeseal.runtime.errors import ConfigError, UnsupportedError  # noqa: E402


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                               nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 16, 10)

    def forward(self, x):
        return self.head(self.f(x).flatten(1))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
                               nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6(),
                               nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU6(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.f(x).flatten(1))


class Recurrent(nn.Module):
    """Each 8x8 digit read as 8 rows of 8 features; the GRU holds ~95% of the parameters."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 64, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(x.shape[0], 8, 8))
        return self.head(out[:, -1])


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(8, 32)
        self.enc = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.enc(self.emb(x.reshape(x.shape[0], 8, 8))).mean(1))


ARCHS = {"convbn": ConvBN, "depthwise": Depthwise, "recurrent": Recurrent, "attention": Attention}


@pytest.fixture(scope="module")
def digits():
    from edgeseal.converters.zoo import load_digits_split

    return load_digits_split()


@pytest.fixture(scope="module")
def trained(digits):
    from edgeseal.converters.train import TrainConfig, fit

    models = {}
    for name, cls in ARCHS.items():
        torch.manual_seed(0)
        models[name] = fit(cls(), digits.x_train, digits.y_train,
                           TrainConfig(epochs=4, lr=3e-3, seed=0, device="cpu", show_progress=False)).eval()
    return models


# --------------------------------------------------------------------------- independent measurements

_FLOAT_HEAVY = {"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
                "GRU", "LSTM", "RNN"}


def ort_float_heavy_ops(model: bytes, tmp_path) -> list[str]:
    """Conv/Gemm/MatMul/recurrent nodes still float in the graph ONNX Runtime runs (after QDQ fusion)."""
    import onnx

    path = tmp_path / "optimized.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(path)
    ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type in _FLOAT_HEAVY)


def tflite_float_heavy_ops(model: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in it.get_tensor_details()}
    heavy = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"}
    return sorted(op["op_name"] for op in it._get_ops_details()
                  if op["op_name"] in heavy and dtypes[op["outputs"][0]] == np.float32)


_INTEGER = {"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QLinearAdd", "QLinearMul", "QLinearSoftmax",
            "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu",
            "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def ort_float_param_share(optimized: "Path") -> float:
    """Share of weights consumed by ops that compute in float, in the graph ONNX Runtime runs.

    A weight is an initializer (not a scale, zero point, shape or scalar) fed to an op directly or
    through one DequantizeLinear; it is float compute when that op is not an integer kernel."""
    import onnx
    from onnx import TensorProto

    g = onnx.load(str(optimized)).graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    weight_types = {TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32}

    def weight(name):
        if name in inits:
            return name
        n = producer.get(name)
        return n.input[0] if n is not None and n.op_type == "DequantizeLinear" and n.input[0] in inits else None

    seen, fl, total = set(), 0, 0
    for node in g.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            continue
        for i in node.input:
            w = weight(i) if i else None
            if w is None or w in seen:
                continue
            init = inits[w]
            n = int(np.prod(init.dims))
            if n <= 1 or init.data_type not in weight_types or w.endswith(("_scale", "_zero_point")):
                continue
            seen.add(w)
            total += n
            fl += n if node.op_type not in _INTEGER else 0
    return fl / total if total else 0.0


def plain_accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    if model[4:8] == b"TFL3":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_content=model)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        preds = []
        for row in x:
            v = row[None].astype(np.float32)
            if inp["dtype"] != np.float32:
                s, z = inp["quantization"]
                v = np.clip(np.round(v / s) + z, -128, 127).astype(inp["dtype"])
            it.set_tensor(inp["index"], v)
            it.invoke()
            preds.append(int(it.get_tensor(out["index"]).argmax()))
        return 100 * float(np.mean(np.asarray(preds) == y))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    return 100 * float(np.mean(logits.argmax(-1) == y))


def plain_speed_ratio(fp32: bytes, int8: bytes, x: np.ndarray, rounds: int = 40) -> float:
    """fp32 time / int8 time with bare sessions, interleaved (> 1: int8 faster)."""
    calls = []
    for m in (fp32, int8):
        if m[4:8] == b"TFL3":
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_content=m, num_threads=1)
            it.allocate_tensors()
            inp = it.get_input_details()[0]
            v = x[:1].astype(np.float32)
            if inp["dtype"] != np.float32:
                s, z = inp["quantization"]
                v = np.clip(np.round(v / s) + z, -128, 127).astype(inp["dtype"])
            it.set_tensor(inp["index"], v)
            calls.append(it.invoke)
        else:
            o = ort.SessionOptions()
            o.intra_op_num_threads = o.inter_op_num_threads = 1
            sess = ort.InferenceSession(m, sess_options=o, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x[:1].astype(np.float32)}
            calls.append(lambda sess=sess, feed=feed: sess.run(None, feed))
    ratios = []
    for _ in range(rounds):
        med = []
        for fn in calls:
            ts = []
            for _ in range(10):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            med.append(np.median(ts))
        ratios.append(med[0] / med[1])
    return float(np.median(ratios))


# --------------------------------------------------------------------------- the cross-check

CASES = [
    ("convbn", "static", "onnx"),
    ("depthwise", "static", "onnx"),
    ("recurrent", "dynamic", "onnx"),
    ("attention", "static", "onnx"),
    ("convbn", "dynamic", "onnx"),  # the trial's "kept in float: none" for a CNN whose Convs all stayed float
    ("convbn", "static", "tflite"),
]


@pytest.mark.parametrize("arch,mode,fmt", CASES, ids=[f"{a}-{m}-{f}" for a, m, f in CASES])
def test_every_claim_matches_an_independent_measurement(arch, mode, fmt, trained, digits, tmp_path):
    from edgeseal.converters.export import export_onnx, export_tflite

    model = trained[arch]
    x, y = digits.x_test, digits.y_test
    recipe = CompressRecipe(quantize=QuantizeStage(mode=mode, max_drop=10.0), export=ExportStage(format=fmt),
                            latency_runs=150)
    result = compress(model, recipe, calibration=digits.x_val, eval=(x, y), show_progress=False)
    rep = result.report
    original, final = rep.stages[0], rep.stages[-1]

    # sizes: the returned bytes are what the last row says
    assert final.size_bytes == len(result.model)
    fp32 = (export_tflite if fmt == "tflite" else export_onnx)(model, x).model  # compress exports on the eval data
    assert original.size_bytes == len(fp32)

    # accuracy: a bare session on the eval set
    assert 100 * final.classification.accuracy == pytest.approx(plain_accuracy(result.model, x, y), abs=1e-9)
    assert rep.reference_accuracy == pytest.approx(plain_accuracy(fp32, x, y), abs=1e-9)
    assert rep.final_drop == pytest.approx(rep.reference_accuracy - 100 * final.classification.accuracy)

    # float ops: what the runtime really runs in float
    fops = rep.float_ops
    heavy = [o for o in fops.float_ops if o.macs > 0]
    if fmt == "tflite":
        independent = tflite_float_heavy_ops(result.model)
    else:
        independent = ort_float_heavy_ops(result.model, tmp_path)
        assert fops.float_param_share == pytest.approx(ort_float_param_share(tmp_path / "optimized.onnx"), abs=0.01)
        import onnx

        assert all(not n.metadata_props for n in onnx.load_from_string(result.model).graph.node)  # no stack traces
    assert len(heavy) == len(independent), (fops.summary(), independent)
    text = rep.render()
    if independent:
        assert "kept in float: none" not in text
        assert f"kept in float: {len(fops.float_ops)} of" in text
    if arch == "recurrent":
        assert fops.float_param_share > 0.9 and any(o.op_type == "GRU" for o in fops.float_ops)
        assert any("recurrent layers stayed float" in w and "rnn (GRU" in w for w in rep.warnings)
    if arch == "convbn" and mode == "dynamic":
        assert sorted(o.op_type for o in heavy) == ["Conv", "Conv"]
        assert any("2 Conv layers stayed float" in w for w in rep.warnings)

    # speed: the ratio's sign agrees with bare interleaved sessions (when either is clearly away from 1)
    claimed = final.speed_vs_original
    measured = plain_speed_ratio(fp32, result.model, x)
    if measured > 1.25:
        assert claimed > 1.0, (claimed, measured)
    if measured < 0.8:
        assert claimed < 1.0, (claimed, measured)
    slower = [w for w in rep.warnings if w.startswith("int8 is ")]
    lo, hi = rep.speed.ratio_iqr[final.stage]
    assert bool(slower) == (claimed < 1.0 and hi < 1.0)  # warned exactly when consistently slower
    if slower:
        assert "slower than original" in slower[0] and "Try:" in slower[0]


# --------------------------------------------------------------------------- the misleading cases


def test_zero_budget_returns_the_best_attempt_and_exits_1(trained, digits, tmp_path):
    model = trained["convbn"]
    # calibration on 5% of the real range clips activations: every attempt loses accuracy
    cal = 0.05 * digits.x_val[:32]
    recipe = CompressRecipe(quantize=QuantizeStage(max_drop=0.0, max_excluded=3), latency_runs=10)
    result = compress(model, recipe, calibration=cal, eval=(digits.x_test, digits.y_test), show_progress=False)
    rep, q = result.report, result.report.quantization
    assert rep.met is False and not q.met
    drops = [s.drop for s in q.steps]
    assert len(drops) == 4 and q.chosen == int(np.argmin(drops))  # best, not last
    assert plain_accuracy(result.model, digits.x_test, digits.y_test) == pytest.approx(q.steps[q.chosen].score)
    assert rep.final_drop == pytest.approx(min(drops))
    assert f"attempt {q.chosen + 1} of 4" in rep.verdict and "no candidate met the 0-point budget" in rep.verdict

    # the CLI writes the kept model, says why, exits 1; --json prints exactly one JSON document
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.savez(tmp_path / "cal.npz", x=cal)
    np.savez(tmp_path / "eval.npz", x=digits.x_test, y=digits.y_test)
    (tmp_path / "r.toml").write_text(
        "latency_runs = 10\nmax_drop = 0.0\n"
        '[model]\nfactory = "test_compress_claims:ConvBN"\nstate_dict = "w.pt"\n'
        '[data]\ncalibration = "cal.npz"\neval = "eval.npz"\n[quantize]\nmax_excluded = 3\n')
    import os

    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    cmd = [sys.executable, "-m", "edgeseal", "--json", "compress", "--recipe", str(tmp_path / "r.toml"),
           "-o", str(tmp_path / "m.onnx")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)  # the whole of stdout is one JSON document
    assert doc["met"] is False and "no candidate met" in doc["report"]["budget"]["verdict"]
    assert (tmp_path / "m.onnx").stat().st_size == doc["size_bytes"]


def test_pruning_and_int8_share_one_budget_against_the_original(trained, digits):
    model = trained["convbn"]
    recipe = CompressRecipe(prune=PruneStage(ratio=0.75, epochs=0), quantize=QuantizeStage(max_drop=0.5, max_excluded=2),
                            latency_runs=10)
    result = compress(model, recipe, train=(digits.x_train, digits.y_train), calibration=digits.x_val,
                      eval=(digits.x_test, digits.y_test), show_progress=False)
    rep = result.report
    pruned = rep.stages[1]
    assert pruned.stage == "pruned + fine-tuned" and rep.pruning.params_after < rep.pruning.params_before
    pruned_drop = rep.reference_accuracy - 100 * pruned.classification.accuracy
    assert pruned_drop > 0.5  # 75% of channels without fine-tuning
    assert rep.met is False and rep.final_drop == pytest.approx(
        rep.reference_accuracy - plain_accuracy(result.model, digits.x_test, digits.y_test))
    assert any("pruned + fine-tuned alone drops" in w for w in rep.warnings)
    # the int8 steps are measured against the original model, not against the pruned one
    assert rep.quantization.reference_score == pytest.approx(rep.reference_accuracy)
    assert len(rep.quantization.steps) == 1  # no layer search: the float model already misses the budget


def test_structured_pruning_that_cannot_touch_a_recurrent_model_is_an_error(trained, digits):
    recipe = CompressRecipe(prune=PruneStage(ratio=0.5, epochs=1), latency_runs=5)
    with pytest.raises(UnsupportedError, match=r"removed nothing.*rnn \(GRU, 14,208 params = 95\.6%\)"):
        compress(trained["recurrent"], recipe, train=(digits.x_train, digits.y_train), eval=(digits.x_test, digits.y_test),
                 show_progress=False)


def test_unstructured_pruning_names_the_layers_it_does_not_mask(trained, digits):
    recipe = CompressRecipe(prune=PruneStage(method="unstructured", amount=0.5, epochs=1), max_drop=100.0, latency_runs=5)
    result = compress(trained["recurrent"], recipe, train=(digits.x_train, digits.y_train),
                      eval=(digits.x_test, digits.y_test), show_progress=False)
    assert any("not pruned: rnn (GRU, 14,208 params = 95.6%)" in w for w in result.report.warnings)


def test_a_recipe_typo_is_reported_before_any_work(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\n[prune]\nepochs = 50\n'
                 '[quantize]\ncalibration = "minmx"\n')
    with pytest.raises(ConfigError, match=r"\[quantize\] calibration='minmx' is not valid; choose one of 'minmax'"):
        load_recipe(p)
    for table, bad in (("prune", 'importance = "l3"'), ("prune", 'scope = "net"')):
        p.write_text(f"[{table}]\n{bad}\n")
        with pytest.raises(ConfigError, match=rf"\[{table}\]"):
            load_recipe(p)
    p.write_text('[quantize]\nmode = "dynamic"\n[export]\nformat = "tflite"\n')
    with pytest.raises(ConfigError, match="dynamic.*ONNX only"):
        load_recipe(p)
    t0 = time.perf_counter()
    p.write_text('[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\n[quantize]\ncalibration = "minmx"\n')
    run = subprocess.run([sys.executable, "-m", "edgeseal", "compress", "--recipe", str(p), "-o", str(tmp_path / "m")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "minmx" in run.stderr and time.perf_counter() - t0 < 60


def test_export_drops_debug_metadata_by_default(trained, digits):
    from edgeseal.converters.export import ExportConfig, export_onnx
    import onnx

    lean = export_onnx(trained["attention"], digits.x_val)
    full = export_onnx(trained["attention"], digits.x_val, ExportConfig(keep_debug_metadata=True))
    assert all(not n.metadata_props for n in onnx.load_from_string(lean.model).graph.node)
    assert any(n.metadata_props for n in onnx.load_from_string(full.model).graph.node)
    assert lean.debug_metadata_bytes > 0.2 * len(full.model)  # stack traces were a large part of the file
    assert len(full.model) - len(lean.model) == lean.debug_metadata_bytes
    assert lean.layer_names and "enc.self_attn" in lean.layer_names.values()  # names survive, in the result
