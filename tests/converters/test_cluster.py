"""Weight clustering: k-means, the budget search on a real model, centroid fine-tuning, and the codec round trip."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgeseal.converters import cluster as cl  # noqa: E402
from edgeseal.runtime import codebook  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def small(digits):
    """A small digits CNN (~11k parameters) trained in a few seconds, and its ONNX export."""
    from edgeseal.converters.export import export_onnx
    from edgeseal.converters.zoo import train_digits_cnn

    torch.set_num_threads(2)
    model = train_digits_cnn(digits, channels=(8, 16, 16), hidden=32, epochs=6, seed=0, show_progress=False)
    return model, export_onnx(model, digits.x_val[:8]).model


def _inits(model: bytes) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}


def test_kmeans_is_deterministic_and_a_fixed_point() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=5000).astype(np.float32)
    c, labels = cl.kmeans_1d(v, 8, iterations=100)
    c2, labels2 = cl.kmeans_1d(v, 8, iterations=100)
    assert np.array_equal(c, c2) and np.array_equal(labels, labels2)
    assert np.all(np.diff(c) > 0) and len(c) == 8
    # every value sits with its nearest centroid, and every centroid is the mean of its values
    assert np.array_equal(labels, np.abs(v[:, None] - c[None, :]).argmin(1))
    means = np.array([v[labels == j].mean() for j in range(8)])
    np.testing.assert_allclose(c, means, atol=1e-5)
    few = np.array([1, 1, 2, 3], np.float32)
    assert cl.kmeans_1d(few, 8)[0].tolist() == [1, 2, 3]


def test_cluster_array_keeps_pruned_zeros_and_counts() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 8, 3, 3)).astype(np.float32)
    w[rng.random(w.shape) < 0.6] = 0.0
    for bits in (1, 2, 4):
        ct = cl.cluster_array(w, bits)
        assert np.all(ct.values[w == 0] == 0) and len(np.unique(ct.values)) <= 1 << bits
        assert 0.0 in ct.centroids[0]
        assert np.count_nonzero(ct.values[w != 0] == 0) == 0 or bits == 1
        assert np.array_equal(ct.values, ct.centroids[0][ct.labels])
        pc = cl.cluster_array(w, bits, per_channel=True)
        assert pc.groups == 16 and all(len(np.unique(r)) <= 1 << bits for r in pc.values.reshape(16, -1))
        assert np.mean((pc.values - w) ** 2) <= np.mean((ct.values - w) ** 2)  # a codebook per channel fits better
    free = cl.cluster_array(w, 2, keep_zero=False)
    assert len(np.unique(free.values)) == 4 and not np.all(free.values[w == 0] == 0)


def test_config_validates_early() -> None:
    for bad in ({"bits": (0, 4)}, {"bits": (9,)}, {"bits": ()}, {"max_drop": -1}, {"epochs": -1}, {"min_params": 0}):
        with pytest.raises(ConfigError, match=r"\[cluster\]"):
            cl.ClusterConfig(**bad)
    assert cl.ClusterConfig(bits=(4, 2, 4)).bits == (2, 4)


def test_budget_search_on_a_real_model_and_bit_identical_codec(small, digits, acc) -> None:
    _, fp32 = small
    score = lambda b: acc(b, digits.x_val, digits.y_val)  # noqa: E731
    cfg = cl.ClusterConfig(max_drop=1.0, bits=(1, 2, 3, 4, 6, 8), min_params=64)
    clustered, report, tensors = cl.cluster_onnx(fp32, digits.x_train, score, cfg)
    assert cl.cluster_onnx(fp32, digits.x_train, score, cfg)[0] == clustered  # deterministic
    # the report's figures are the model's: re-measured independently
    assert report.met and report.score == pytest.approx(acc(clustered, digits.x_val, digits.y_val))
    assert report.reference_score == pytest.approx(acc(fp32, digits.x_val, digits.y_val))
    assert len(report.steps) >= 2 and report.steps[0].bits == {n: 8 for n in report.steps[0].bits}
    inits = _inits(clustered)
    for layer in report.layers:
        assert len(np.unique(inits[layer.name])) <= 1 << layer.bits
        assert layer.centroids == len(np.unique(inits[layer.name]))
        assert np.array_equal(inits[layer.name], tensors[layer.name].values)
    # sensitivity drives the widths: the layer with the most output noise at 1 bit never gets fewer bits than the least
    assert sum(lay.bits * lay.params for lay in report.layers) < 8 * sum(lay.params for lay in report.layers)
    # the encoded model gives back exactly the converter's clustered weights, and the same outputs
    size, graph, records = cl.encoded_size(clustered, min_params=64)
    decoded = codebook.decode_tensors(records)
    assert set(decoded) >= {layer.name for layer in report.layers}
    for name, arr in decoded.items():
        assert arr.dtype == inits[name].dtype and np.array_equal(arr.view(np.uint32), inits[name].view(np.uint32))
    from edgeseal.converters.infer import runner_for

    # the graph runs on the decoded records handed over in memory, with the clustered model's exact outputs
    sess = codebook.session(_graph(graph), records)
    x = digits.x_test
    assert np.array_equal(sess.run(None, {sess.get_inputs()[0].name: x})[0], runner_for(clustered).run(x))
    assert size.total == len(graph) + len(records) and size.total * 4 < len(fp32)  # smaller than int8 could be


def _graph(compressed: bytes) -> bytes:
    import zlib

    return zlib.decompress(compressed)


def test_centroid_finetuning_sums_gradients_and_keeps_the_codebook(small, digits, acc) -> None:
    model, fp32 = small
    model = copy.deepcopy(model)
    with torch.no_grad():  # prune: half of the first linear layer's weights to zero
        w = model.classifier[1].weight
        w[w.abs() < w.abs().median()] = 0.0
    from edgeseal.converters.export import export_onnx

    pruned = export_onnx(model, digits.x_val[:8]).model
    score = lambda b: acc(b, digits.x_val, digits.y_val)  # noqa: E731
    cfg = cl.ClusterConfig(max_drop=3.0, bits=(2, 3), min_params=64, epochs=2, lr=1e-3)
    _, report, tensors = cl.cluster_onnx(pruned, digits.x_train, score, cfg)
    tuned, names = cl.finetune_centroids(model, pruned, tensors, (digits.x_train, digits.y_train), cfg)
    assert "classifier.1.weight" in names and len(names) == len(report.layers)
    params = dict(tuned.named_parameters())
    inits = {}
    for name in names:  # the exporter names each initializer after its torch parameter (Linear weights transposed)
        w = params[name].detach().numpy()
        inits[name] = w if w.shape == tensors[name].values.shape else w.T
    for layer in report.layers:
        before = tensors[layer.name]
        new = inits[layer.name]
        # same labels, new shared values: every weight equals its (trained) centroid
        for j in range(len(before.centroids[0])):
            members = new[before.labels == j]
            assert len(np.unique(members)) <= 1
        assert len(np.unique(new)) <= len(before.centroids[0])
        zero = before.values == 0
        assert np.all(new[zero] == 0)  # pruned weights and the zero centroid stay zero
    assert any(not np.array_equal(inits[lay.name], tensors[lay.name].values) for lay in report.layers)


def test_centroid_gradient_is_the_sum_over_shared_weights() -> None:
    lin = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0, 2.0, 0.0]]))
    ct = cl.cluster_array(lin.weight.detach().numpy(), 2)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # centroids {0, 1, 2}: d(out)/d(centroid 1) = x0 + x1 = 3, d/d(centroid 2) = x2 = 3, zero centroid frozen
    centroids = torch.nn.Parameter(torch.as_tensor(ct.centroids[0]))
    out = (x * centroids[torch.as_tensor(ct.labels)]).sum()
    out.backward()
    assert centroids.grad.tolist() == [4.0, 3.0, 3.0]  # autograd's gather backward sums; finetune masks the zero
    model = torch.nn.Sequential(lin)
    x_train = np.tile(x.numpy(), (8, 1))
    cfg = cl.ClusterConfig(epochs=1, lr=0.1, batch_size=8, min_params=1)
    tuned, names = cl.finetune_centroids(model, _export_linear(lin), {"w": ct}, (x_train, np.zeros(8, np.int64)), cfg,
                                         loss_fn=lambda logits, y, inputs: logits.sum())
    w = tuned[0].weight.detach().numpy()[0]
    assert names == ("0.weight",) and w[3] == 0.0 and w[0] == w[1] != 1.0 and w[2] != 2.0
    # one Adam step moves each centroid by lr against the sign of its summed gradient
    np.testing.assert_allclose([w[0], w[2]], [0.9, 1.9], atol=1e-4)


def _export_linear(lin: torch.nn.Linear) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(lin.weight.detach().numpy(), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    return helper.make_model(g).SerializeToString()


def test_composes_with_static_int8(small, digits) -> None:
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static

    _, fp32 = small
    names = cl.weight_initializers(fp32, min_params=64)
    clustered = cl.apply_clusters(fp32, {n: cl.cluster_array(_inits(fp32)[n], 3).values for n in names})
    q = quantize_onnx_static(clustered, digits.x_train[:64], OnnxStaticConfig())
    found = cl.clustered_tensors(q, min_params=64)
    int8 = {n: a for n, (a, g) in found.items() if a.dtype == np.int8}
    assert len(int8) >= len(names)
    for n, a in int8.items():  # per channel, at most 8 int8 values: 3-bit indices
        assert all(len(np.unique(r)) <= 8 for r in a.reshape(a.shape[0], -1))
    size, _, records = cl.encoded_size(q, min_params=64)
    decoded = codebook.decode_tensors(records)
    inits = _inits(q)
    assert all(np.array_equal(decoded[n], inits[n]) and decoded[n].dtype == inits[n].dtype for n in decoded)


# --------------------------------------------------------------------------- uniform grids (method="grid")


def _entropy(a: np.ndarray) -> float:
    _, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_grid_array_matches_an_independent_quantizer() -> None:
    rng = np.random.default_rng(3)
    w = (rng.laplace(size=(12, 5, 3, 3)) * rng.uniform(0.01, 2.0, size=(12, 1, 1, 1))).astype(np.float32)
    w[4] = 0.0  # an all-zero channel
    for step in (1.0, 0.25, 0.07):
        gt = cl.grid_array(w, step)
        rms = np.sqrt((w.reshape(12, -1).astype(np.float64) ** 2).mean(1))
        scale = (step * rms).astype(np.float32)
        scale[4] = 1.0
        q = np.round(w.reshape(12, -1) / scale.astype(np.float64)[:, None]) + 0.0  # no ties in random data; -0 -> +0
        want = (q.astype(np.float32) * scale[:, None]).reshape(w.shape)
        assert np.array_equal(gt.scales, scale) and np.array_equal(gt.ints.reshape(12, -1), q.astype(np.float32))
        assert np.array_equal(gt.values.view(np.uint32), want.view(np.uint32))  # bit for bit
        assert np.all(gt.values[4] == 0) and gt.levels == len(np.unique(q)) <= 255
        assert gt.entropy_bits() == pytest.approx(_entropy(q))
        assert np.max(np.abs(gt.values - w).reshape(12, -1) / scale[:, None]) <= 0.5 + 1e-6  # half a step at most
    # entropy falls by about one bit per halving of the step's inverse (high-rate theory: h(W) - log2(step))
    e = [cl.grid_array(w, s).entropy_bits() for s in (0.1, 0.05)]
    assert 0.8 < e[1] - e[0] < 1.2


def test_grid_array_axis_and_wide_range_tails() -> None:
    rng = np.random.default_rng(4)
    w = rng.normal(size=(6, 10)).astype(np.float32)  # a Gemm weight without transB: channels on axis 1
    gt = cl.grid_array(w, 0.5, axis=1)
    scale = (0.5 * np.sqrt((w.astype(np.float64) ** 2).mean(0))).astype(np.float32)
    assert np.array_equal(gt.scales, scale) and np.array_equal(gt.values, np.round(w / scale).astype(np.float32) * scale)
    big = rng.normal(size=(4, 4000)).astype(np.float32)
    big[1, 7], big[2, 9] = 300.0, -250.0  # outliers far beyond 127 steps
    gt = cl.grid_array(big, 0.05)
    assert gt.levels <= 255 and len(np.unique(gt.ints)) == gt.levels
    k = 127 - cl.GRID_TAIL_LEVELS
    u = big.astype(np.float64) / gt.scales.astype(np.float64)[:, None]
    core = np.abs(u) < k + 0.5
    assert np.array_equal(gt.ints[core], np.round(u[core]).astype(np.float32))  # the core is the plain grid
    levels = np.unique(gt.ints)
    nearest = levels[np.abs(u[~core][:, None] - levels[None, :]).argmin(1)]
    assert np.array_equal(gt.ints[~core], nearest)  # the tails take their nearest level
    assert abs(gt.ints[1, 7] - u[1, 7]) < 1 and abs(gt.ints[2, 9] - u[2, 9]) < 1  # outliers kept, not clipped


def test_grid_config_validates_early() -> None:
    for bad in ({"method": "lloyd"}, {"steps": ()}, {"steps": (0.0,)}, {"steps": (-1,)}, {"steps": "0.5"},
                {"method": "grid", "epochs": 2}):
        with pytest.raises(ConfigError, match=r"\[cluster\]"):
            cl.ClusterConfig(**bad)
    cfg = cl.ClusterConfig(method="grid", steps=(0.25, 1, 0.5, 0.25))
    assert cfg.method is cl.Method.GRID and cfg.steps == (1.0, 0.5, 0.25)


def test_grid_search_encodes_bit_identically_and_sizes_are_the_bytes(small, digits, acc) -> None:
    from onnx import numpy_helper

    from edgeseal.converters.infer import runner_for

    _, fp32 = small
    score = lambda b: acc(b, digits.x_val, digits.y_val)  # noqa: E731
    cfg = cl.ClusterConfig(method="grid", max_drop=1.0, min_params=64, steps=(1.0, 0.5, 0.25, 0.125, 0.0625))
    model, report, grids = cl.cluster_onnx(fp32, digits.x_train[:64], score, cfg)
    assert cl.cluster_onnx(fp32, digits.x_train[:64], score, cfg)[0] == model  # deterministic
    assert report.met and report.score == pytest.approx(acc(model, digits.x_val, digits.y_val))
    assert report.steps[0].stored_bits > report.steps[-1].stored_bits and report.layers
    inits = _inits(model)
    fp_inits = _inits(fp32)
    proto = onnx.load_from_string(model)
    for layer in report.layers:
        gt = grids[layer.name]
        assert np.array_equal(inits[layer.name].view(np.uint32), gt.ints.view(np.uint32))
        assert layer.centroids == len(np.unique(inits[layer.name])) and layer.step in cfg.steps
        # the reported bytes are the bytes: an independent encoding of the model's own initializer + its scales
        scale = next(numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == layer.name + "_grid_scale")
        assert layer.encoded_bytes == len(codebook.to_bytes(codebook.encode(inits[layer.name]))) + 4 * scale.size
        assert np.array_equal(scale.reshape(-1), gt.scales)
        assert layer.entropy_bits == pytest.approx(_entropy(inits[layer.name]))
        assert layer.weight_sqnr_db == pytest.approx(10 * np.log10(
            np.sum(fp_inits[layer.name].astype(np.float64) ** 2) / np.sum((fp_inits[layer.name] - gt.values) ** 2.0)))
    # the graph computes with ints * scale: the model's outputs are the float model's with the grid values as weights
    # and the corrected biases (to float rounding: the Mul comes after the layer)
    x = digits.x_test[:64]
    bias_of = {n.input[1]: n.input[2] for n in onnx.load_from_string(fp32).graph.node if len(n.input) > 2}
    replaced = {n: g.values for n, g in grids.items()}
    for n, g in grids.items():
        if g.bias_shift is not None:
            replaced[bias_of[n]] = (fp_inits[bias_of[n]].astype(np.float64) - g.bias_shift).astype(np.float32)
    assert any(g.bias_shift is not None for g in grids.values())
    ref = cl.apply_clusters(fp32, replaced)
    np.testing.assert_allclose(runner_for(model).run(x), runner_for(ref).run(x), rtol=1e-4, atol=1e-4)
    # the codebook container gives back the converter's tensors bit for bit, and the same outputs exactly
    size, graph, records = cl.encoded_size(model, min_params=64)
    assert size.total == len(graph) + len(records)
    decoded = codebook.decode_tensors(records)
    assert {lay.name for lay in report.layers} <= set(decoded)
    for name, arr in decoded.items():
        assert np.array_equal(arr.view(np.uint32), inits[name].view(np.uint32))
    sess = codebook.session(_graph(graph), records)
    assert np.array_equal(sess.run(None, {sess.get_inputs()[0].name: x})[0], runner_for(model).run(x))
    payload = cl.codebook_model(model, min_params=64)
    assert len(payload) < len(fp32) / 3


def test_bias_correction_removes_the_mean_shift() -> None:
    """A Conv whose grid shifts every channel's mean: the corrected bias brings the mean output back."""
    from onnx import TensorProto, helper, numpy_helper

    from edgeseal.converters.infer import runner_for

    rng = np.random.default_rng(5)
    w = (rng.normal(size=(8, 4, 3, 3)) + 0.3).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 8, 8])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    fp32 = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = (rng.normal(size=(32, 4, 8, 8)) + 1.0).astype(np.float32)  # inputs with a mean: a weight error shifts outputs
    ref = runner_for(fp32).run(x)
    outs = {}
    for correct in (False, True):
        cfg = cl.ClusterConfig(method="grid", max_drop=100.0, min_params=1, steps=(2.0,), bias_correction=correct)
        model, report, grids = cl.cluster_onnx(fp32, x, lambda m: 0.0, cfg, reference_score=0.0)
        assert report.layers[0].step == 2.0
        outs[correct] = runner_for(model).run(x)
        gt = grids["w"]
        if correct:  # the shift is (W_grid - W) . E[x], summed over each output channel's taps
            want = ((gt.values.astype(np.float64) - w).sum(axis=(2, 3)) * x.astype(np.float64).mean(axis=(0, 2, 3))).sum(1)
            np.testing.assert_allclose(gt.bias_shift, want, rtol=1e-6, atol=1e-9)
        else:
            assert gt.bias_shift is None
    shift = {c: np.abs((outs[c] - ref)[:, :, 1:-1, 1:-1].mean(axis=(0, 2, 3))).mean() for c in outs}
    assert shift[True] < 0.05 * shift[False]


def test_clustered_tensors_keeps_the_smaller_coded_record() -> None:
    """A grid tensor whose per-channel codebooks win on packed bits but lose once the indices are entropy-coded:
    the record that ships is the smaller coded one, measured independently for both groupings."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(6)
    q = np.round(rng.laplace(scale=2.0, size=(64, 4096)))
    q[0::2], q[1::2] = np.clip(q[0::2], -8, 7), np.clip(q[1::2], -7, 8)  # 16 levels per row, 17 in the tensor
    ints = (q + 0.0).astype(np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
        [numpy_helper.from_array(ints, "w")])).SerializeToString()
    coded = {g: len(codebook.to_bytes(codebook.encode(ints, groups=g), "auto")) for g in (1, 64)}
    packed = {g: len(codebook.to_bytes(codebook.encode(ints, groups=g), "packed")) for g in (1, 64)}
    assert packed[64] < packed[1] and coded[1] < coded[64]  # the case this is about
    (arr, groups), = cl.clustered_tensors(model).values()
    assert groups == 1 and np.array_equal(arr, ints)
    size, _, records = cl.encoded_size(model)
    assert size.tensor_bytes == len(records) and len(records) < coded[64]


def test_adaround_grids_learns_the_rounding_on_the_same_steps(small, digits) -> None:
    """AdaRound on chosen grids: same channel scales, levels within one step of nearest, some changed, the
    biases corrected, and the layer outputs on held-out data closer to the float model's than nearest rounding."""
    from edgeseal.converters.adaround import AdaRoundConfig
    from edgeseal.converters.infer import runner_for

    _, fp32 = small
    cfg = cl.ClusterConfig(method="grid", max_drop=100.0, min_params=64, steps=(1.0,))  # coarse: room to round
    nearest_model, _, grids = cl.cluster_onnx(fp32, digits.x_train[:64], lambda m: 0.0, cfg, reference_score=0.0)
    assert grids
    fp_inits = _inits(fp32)
    new, report = cl.adaround_grids(fp32, grids, digits.x_train[:128], AdaRoundConfig(iterations=200, samples=128))
    assert set(new) == set(grids) and len(report.layers) == len(grids)
    changed = 0
    for name, gt in new.items():
        old = grids[name]
        assert np.array_equal(gt.scales, old.scales) and gt.axis == old.axis and gt.step == old.step
        assert np.array_equal(gt.ints, np.round(gt.ints))  # still levels of the grid
        shape = [1] * gt.ints.ndim
        shape[gt.axis] = -1
        assert np.array_equal(gt.values, gt.ints * gt.scales.reshape(shape))
        u = fp_inits[name].astype(np.float64) / gt.scales.reshape(shape)
        assert np.all(np.abs(gt.ints - u) < 1.0 + 1e-6)  # floor or ceil of the scaled weight
        changed += int(np.sum(gt.ints != old.ints))
        assert gt.bias_shift is not None
    assert changed > 0
    # held-out digits: the model with the learned rounding is closer to fp32 than the nearest grid's
    x = digits.x_test[:256]
    ref = runner_for(fp32).run(x).astype(np.float64)
    err = lambda m: float(np.mean((runner_for(m).run(x) - ref) ** 2))  # noqa: E731
    assert err(cl.grid_model(fp32, new)) < err(nearest_model)
    # nothing to round again: only tail-level grids
    tails = {n: dataclasses.replace(g, ints=g.ints + 0.5) for n, g in grids.items()}
    with pytest.raises(ConfigError, match="tail levels"):
        cl.adaround_grids(fp32, tails, digits.x_train[:16])


def test_grid_search_with_adaround_reports_the_rounded_model(small, digits, acc) -> None:
    """``ClusterConfig(adaround=N)``: the search's grids rounded again, the score and sizes those of that model."""
    from edgeseal.converters.adaround import AdaRoundConfig

    _, fp32 = small
    score = lambda b: acc(b, digits.x_val, digits.y_val)  # noqa: E731
    base = dict(method="grid", max_drop=100.0, min_params=64, steps=(1.0, 0.5))
    nearest_model, nearest_report, nearest = cl.cluster_onnx(fp32, digits.x_train[:64], score, cl.ClusterConfig(**base))
    model, report, grids = cl.cluster_onnx(fp32, digits.x_train[:64], score,
                                           cl.ClusterConfig(**base, adaround=50, adaround_samples=64))
    want, _ = cl.adaround_grids(fp32, nearest, digits.x_train[:64], AdaRoundConfig(iterations=50, samples=64))
    assert set(grids) == set(want)
    for n in grids:
        assert np.array_equal(grids[n].ints, want[n].ints)
    assert model == cl.grid_model(fp32, grids) and model != nearest_model
    assert report.score == pytest.approx(score(model))
    assert report.score_before_adaround == pytest.approx(nearest_report.score)
    assert report.adaround is not None and len(report.adaround.layers) == len(grids)
    for layer in report.layers:
        assert layer.encoded_bytes == cl.grid_record_bytes(grids[layer.name])
    assert report.to_dict()["adaround"]["layers"] and "AdaRound" in report.summary()
    with pytest.raises(ConfigError, match="method = 'grid'"):
        cl.ClusterConfig(adaround=10)
    with pytest.raises(ConfigError, match="adaround_samples"):
        cl.ClusterConfig(method="grid", adaround=10, adaround_samples=0)
