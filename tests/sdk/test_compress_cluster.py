"""The compress recipe's [cluster] stage and [quantize] bits = 4, and both in the search space."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseal.compress.recipe import recipe_from_dict  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    from edgeseal.converters.zoo import load_digits_split

    return load_digits_split(seed=0)


@pytest.mark.parametrize("table, message", [
    ({"cluster": {"bits": [0, 4]}}, r"\[cluster\] bits=\[0, 4\] must be index widths 1..8"),
    ({"cluster": {"bits": 4}}, r"\[cluster\] bits=4 must be a list"),
    ({"cluster": {"epochs": -1}}, r"\[cluster\] epochs=-1 must be >= 0"),
    ({"cluster": {"centroids": 16}}, r"unknown key 'centroids' in \[cluster\]"),
    ({"cluster": {"method": "lloyd"}}, r"\[cluster\] method='lloyd' must be one of 'kmeans', 'grid'"),
    ({"cluster": {"method": "grid", "epochs": 2}}, r"method = 'grid' has no centroid fine-tuning"),
    ({"cluster": {"adaround": 100}}, r"adaround learns the rounding of grids: it needs method = 'grid'"),
    ({"cluster": {"method": "grid", "adaround": -1}}, r"\[cluster\] adaround=-1 must be an integer >= 0"),
    ({"quantize": {"bits": 2}}, r"\[quantize\] bits=2 must be 8 \(int8\) or 4"),
    ({"quantize": {"bits": 4, "block_size": 24}}, r"\[quantize\] block_size=24 must be a power of two"),
    ({"quantize": {"bits": 4, "algorithm": "awq"}}, r"\[quantize\] algorithm='awq' is not valid"),
    ({"quantize": {"bits": 4, "fallback": "int2"}}, r"\[quantize\] fallback='int2'"),
    ({"quantize": {"bits": 4, "mode": "none"}}, r"bits = 4 with mode = 'none'"),
    ({"quantize": {"bits": 4, "qat_epochs": 2}}, r"qat_epochs fine-tunes for int8"),
    ({"cluster": {}, "export": {"format": "tflite"}}, r"work on ONNX models"),
])
def test_recipe_fields_are_checked_before_any_work(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(table)


def test_recipe_cluster_method_reaches_the_converter() -> None:
    from edgeseal.converters.cluster import Method

    assert recipe_from_dict({"cluster": {"method": "grid"}}).cluster.config().method is Method.GRID
    assert recipe_from_dict({"cluster": {}}).cluster.config().method is Method.KMEANS
    assert recipe_from_dict({"cluster": {"method": "grid", "adaround": 100}}).cluster.config().adaround == 100


def test_trials_carry_cluster_and_int4() -> None:
    from edgeseal.search.space import Budget, SearchSpace, TrialConfig, grid, trial_recipe

    base = recipe_from_dict({"cluster": {"bits": [2, 4]}})
    space = SearchSpace(prune_ratio=[0.0], quantization=["none", "int4", "dynamic"], calibration=["minmax"],
                        max_float_layers=[0], distill=[False], cluster=[False, True])
    points = grid(space)
    assert {t.label() for t in points} == {"p00-none-cl", "p00-int4-f0", "p00-int4-f0-cl", "p00-dynamic-f0",
                                           "p00-dynamic-f0-cl"}
    r = trial_recipe(base, TrialConfig(quantization="int4", max_float_layers=2, cluster=True), Budget(max_drop=0.5))
    assert r.quantize.bits == 4 and r.quantize.max_excluded == 2 and r.cluster.bits == (2, 4)
    assert trial_recipe(base, TrialConfig(quantization="dynamic"), Budget()).quantize.bits == 8
    assert trial_recipe(base, TrialConfig(quantization="dynamic"), Budget()).cluster is None


@pytest.mark.slow  # four torch.export ONNX exports, training and int8 calibration: ~25 s on an idle 2-core VM
def test_prune_cluster_int8_in_one_recipe(digits) -> None:
    from edgeseal.compress import compress
    from edgeseal.converters import cluster as cl
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.zoo import train_digits_cnn
    from edgeseal.runtime import codebook

    torch.set_num_threads(2)
    model = train_digits_cnn(digits, channels=(8, 16, 16), hidden=32, epochs=4, seed=0, show_progress=False)
    recipe = recipe_from_dict({
        "max_drop": 1.5, "latency_runs": 1,
        "prune": {"method": "unstructured", "amount": 0.5, "epochs": 1, "gradual": False},
        "cluster": {"bits": [2, 4, 8], "min_params": 64, "epochs": 1, "lr": 1e-3},
        "quantize": {"mode": "static", "samples": 64, "max_excluded": 0},
    })
    res = compress(model, recipe, train=(digits.x_train, digits.y_train), eval=(digits.x_val, digits.y_val),
                   show_progress=False)
    rep = res.report
    assert [s.stage for s in rep.stages] == ["original", "pruned + fine-tuned", "clustered", "int8 static"]
    clustered = rep.stages[2]
    creport = rep.clustering
    assert creport is not None and len(creport.layers) == 5
    # every figure re-measured from the artifacts: encoded bytes, accuracy, the layers' widths
    assert rep.stages[1].encoded_bytes is None and clustered.encoded_bytes is not None
    assert rep.stages[3].encoded_bytes == cl.encoded_size(res.model)[0].total
    acc = 100 * float((runner_for(res.model).run_batched(digits.x_val).argmax(-1) == digits.y_val).mean())
    assert acc == pytest.approx(100 * rep.stages[3].classification.accuracy)
    assert rep.met and rep.final_drop <= 1.5
    tensors = codebook.decode_tensors(cl.encoded_size(res.model)[2])
    int8 = [a for a in tensors.values() if a.dtype == np.int8]
    big = [layer for layer in creport.layers if layer.params >= 256]  # smaller ones stay in the (zlib) graph
    assert len(int8) >= len(big) >= 3
    for layer in big:  # a layer's int8 weights take no more values per channel than it had centroids
        w = next(a for a in int8 if a.size == layer.params)
        assert all(len(np.unique(r)) <= 1 << layer.bits for r in w.reshape(w.shape[0], -1))
    assert rep.stages[3].encoded_bytes < rep.stages[3].size_bytes
    assert "clustering" in rep.to_dict() and rep.to_dict()["stages"][2]["encoded_bytes"] == clustered.encoded_bytes
    assert "codebook-encoded" in rep.render()


def test_cli_seals_a_clustered_onnx_model_as_codebook(tmp_path) -> None:
    """edgeseal seal --codebook writes an onnx+codebook package; load decodes it and runs it bit-identically."""
    from types import SimpleNamespace

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import edgeseal
    from edgeseal.converters.cluster import cluster_array

    rng = np.random.default_rng(0)
    w = cluster_array(rng.normal(size=(64, 32)).astype(np.float32), 3).values
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    (tmp_path / "m.onnx").write_bytes(m.SerializeToString())

    def cli(*args: str) -> SimpleNamespace:  # in-process: the same parser and exit codes as `edgeseal ...`
        import contextlib
        import io
        import os

        from edgeseal.cli import main

        err, cwd = io.StringIO(), os.getcwd()
        os.chdir(tmp_path)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(list(args))
        finally:
            os.chdir(cwd)
        return SimpleNamespace(returncode=code, stderr=err.getvalue())

    assert cli("keygen", "publisher", "-o", "pub").returncode == 0
    assert cli("keygen", "device", "-o", "dev").returncode == 0
    proc = cli("seal", "m.onnx", "--codebook", "-o", "m.eseal", "--publisher", "pub.pem", "--device", "dev.pub")
    assert proc.returncode == 0, proc.stderr
    model = edgeseal.load(tmp_path / "m.eseal", key=str(tmp_path / "dev.pem"), trusted=[str(tmp_path / "pub.pub")])
    try:
        assert model.manifest.content_format == "onnx+codebook" and model.manifest.name == "m"
        x = rng.normal(size=(3, 64)).astype(np.float32)
        ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert model.run({"x": x})["y"].tobytes() == ref.tobytes()
    finally:
        model.close()
    assert (tmp_path / "m.eseal").stat().st_size < (tmp_path / "m.onnx").stat().st_size / 4
    bad = cli("seal", "m.onnx", "--codebook", "--format", "tflite", "-o", "x.eseal", "--publisher", "pub.pem",
              "--device", "dev.pub")
    assert bad.returncode == 2 and "--codebook encodes an ONNX model" in bad.stderr
