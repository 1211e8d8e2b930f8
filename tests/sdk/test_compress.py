import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseal.compress import compress, load_model, main  # noqa: E402
from edgeseal.compress.recipe import CompressRecipe, ExportStage, QuantizeStage, TargetSpec, load_recipe, recipe_from_dict  # noqa: E402
from edgeseal.runtime.errors import ConfigError, UnsupportedError  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn

    d = load_digits_split()
    model = train_digits_cnn(d, epochs=6, show_progress=False)
    tmp = tmp_path_factory.mktemp("compress")
    np.savez(tmp / "train.npz", x=d.x_train, y=d.y_train)
    np.savez(tmp / "eval.npz", x=d.x_test, y=d.y_test)
    np.savez(tmp / "calib.npz", x=d.x_val)
    torch.save(model.state_dict(), tmp / "digits.pt")
    return d, model, tmp


def test_recipe_maps_onto_dataclasses(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[model]\nfactory = "m:f"\nstate_dict = "w.pt"\n[quantize]\nmode = "dynamic"\nexclude_nodes = ["a"]\n')
    r = load_recipe(p)
    assert r.quantize.mode.value == "dynamic" and r.quantize.exclude_nodes == ("a",)
    assert r.model.state_dict == str(tmp_path / "w.pt")  # relative to the recipe file
    assert r.prune is None and r.export.format.value == "onnx"
    with pytest.raises(ConfigError, match=r"unknown key 'max_dorp' in \[quantize\]; valid keys are: .*max_drop"):
        recipe_from_dict({"quantize": {"max_dorp": 1}})
    with pytest.raises(ConfigError, match="unknown key 'quantise'"):
        recipe_from_dict({"quantise": {}})
    q = recipe_from_dict({"quantize": {"smooth_alpha": 0.7, "ranking": "leave_one_out"}}).quantize
    assert (q.smooth_alpha, q.ranking) == (0.7, "leave_one_out")
    with pytest.raises(ConfigError, match="ranking"):
        recipe_from_dict({"quantize": {"ranking": "random"}})
    with pytest.raises(ConfigError, match=r"\[prune\] method='channels'"):
        recipe_from_dict({"prune": {"method": "channels"}})
    p.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(p)


def test_not_a_model(tmp_path, setup):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"definitely not a model")
    with pytest.raises(ConfigError, match="is not a model"):
        load_model(bad)
    with pytest.raises(ConfigError, match="state dict"):
        load_model(setup[2] / "digits.pt")  # a state dict is not a model file
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_compress_static_onnx(setup):
    d, model, _ = setup
    recipe = CompressRecipe(quantize=QuantizeStage(mode="static", max_drop=0.5), latency_runs=50)
    result = compress(model, recipe, calibration=d.x_val, eval=(d.x_test, d.y_test), show_progress=False)
    stages = result.report.stages
    assert [s.stage for s in stages] == ["original", "int8 static"]
    assert stages[1].size_bytes <= 0.30 * stages[0].size_bytes
    assert stages[1].classification.accuracy >= stages[0].classification.accuracy - 0.005 or result.report.warnings
    assert len(stages[1].classification.per_class) == 10
    d_json = json.loads(result.report.to_json())
    assert d_json["quantization"]["mode"] == "static" and d_json["stages"][1]["latency"]["runs"] == 50
    table = result.report.render()
    assert "int8 static" in table and "precision" in table and "kept in float" in table
    # fidelity to the original, without labels: checked against bare ONNX Runtime sessions on the same inputs
    import onnxruntime as ort

    def logits(model: bytes) -> np.ndarray:
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: d.x_test[i:i + 1]})[0] for i in range(len(d.x_test))])

    ref, q = logits(result.report.export.model), logits(result.model)  # the original float export, the int8 model
    assert stages[0].fidelity.top1_agreement == 1.0 and stages[0].fidelity.n == len(d.x_test)
    assert stages[1].fidelity.top1_agreement == pytest.approx(np.mean(ref.argmax(1) == q.argmax(1)))
    sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref.astype(np.float64) - q) ** 2))
    assert stages[1].fidelity.sqnr_db == pytest.approx(sqnr, rel=1e-4)
    assert d_json["stages"][1]["fidelity"]["top1_agreement"] == stages[1].fidelity.top1_agreement
    assert "agree %" in table and f"{100 * stages[1].fidelity.top1_agreement:.2f}" in table


def test_calibration_data_of_the_wrong_shape(setup):
    d, model, _ = setup
    with pytest.raises(ConfigError, match=r"calibration data .*shape"):
        compress(model, CompressRecipe(quantize=QuantizeStage()), calibration=np.zeros((8, 1, 6, 6), np.float32),
                 eval=(d.x_test, d.y_test), show_progress=False)


def test_op_the_target_cannot_run(setup):
    d, model, _ = setup
    recipe = CompressRecipe(target=TargetSpec(name="npu", supported_ops=("Conv", "Relu")), latency_runs=5)
    with pytest.raises(UnsupportedError, match="MaxPool"):
        compress(model, recipe, eval=(d.x_test, d.y_test), show_progress=False)


def test_cli_prune_distill_quantize_tflite(setup, tmp_path, capsys):
    d, _, tmp = setup
    recipe = tmp / "r.toml"
    recipe.write_text(
        "latency_runs = 20\nmax_drop = 1.5\n"
        '[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\nstate_dict = "digits.pt"\ninput_shape = [1, 8, 8]\n'
        '[data]\ntrain = "train.npz"\ncalibration = "calib.npz"\neval = "eval.npz"\n'
        "[prune]\nratio = 0.5\nepochs = 4\n[distill]\ntemperature = 4.0\n"
        '[quantize]\nmode = "static"\n[export]\nformat = "tflite"\n'
    )
    out = tmp_path / "m.tflite"
    assert main(["compress", "--recipe", str(recipe), "-o", str(out), "--quiet"]) == 0
    report = json.loads((tmp_path / "m.tflite.report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["original", "pruned + fine-tuned", "int8 static"]
    assert report["pruning"]["channels_removed"] == pytest.approx(0.5)
    sizes = [s["size_bytes"] for s in report["stages"]]
    assert sizes[2] < sizes[1] < 0.35 * sizes[0] and out.stat().st_size == sizes[2]
    assert out.read_bytes()[4:8] == b"TFL3"
    bad = tmp / "bad.toml"
    bad.write_text("[quantize]\nmaxdrop = 1\n")
    assert main(["compress", "--recipe", str(bad), "-o", str(out), "--quiet"]) == 2
    assert "unknown key 'maxdrop'" in capsys.readouterr().err


def test_target_profile_checks_format(setup):
    d, model, _ = setup
    recipe = CompressRecipe(target=TargetSpec(name="android-arm64"), export=ExportStage(format="onnx"), latency_runs=5)
    from edgeseal.targets.profile import get_profile

    if get_profile("android-arm64").format.value == "onnx":
        pytest.skip("android-arm64 profile runs ONNX here")
    with pytest.raises(ConfigError, match=r"android-arm64.*format = 'tflite'"):  # checked before any work
        compress(model, recipe, eval=(d.x_test, d.y_test), show_progress=False)


def test_qat_when_the_budget_is_missed(setup):
    d, model, _ = setup
    # calibration data at 5% of the real range makes every activation range far too small: PTQ must miss
    recipe = CompressRecipe(quantize=QuantizeStage(max_drop=0.5, max_excluded=0, qat_epochs=1), latency_runs=5)
    result = compress(model, recipe, train=(d.x_train, d.y_train), calibration=0.05 * d.x_val[:16],
                      eval=(d.x_test, d.y_test), show_progress=False)
    stages = result.report.stages
    assert [s.stage for s in stages] == ["original", "int8 static", "int8 static + QAT"]
    assert stages[1].classification.accuracy < stages[0].classification.accuracy - 0.005
    assert "quantization-aware" in stages[2].notes[0]
    assert result.model is not None and len(result.model) == stages[2].size_bytes


def test_cli_compress_with_a_stage_cache_returns_the_same_files_until_an_input_changes(setup, tmp_path, capsys):
    d, _, tmp = setup
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        "latency_runs = 10\n"
        f'[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\nstate_dict = "{tmp / "digits.pt"}"\n'
        "input_shape = [1, 8, 8]\n"
        f'[data]\ncalibration = "{tmp / "calib.npz"}"\neval = "{tmp_path / "eval.npz"}"\n'
        '[quantize]\nmode = "static"\n'
    )
    np.savez(tmp_path / "eval.npz", x=d.x_test, y=d.y_test)
    cache = tmp_path / "cache"
    args = ["--json", "compress", "--recipe", str(recipe), "--cache-dir", str(cache)]

    def run(out):
        assert main([*args, "-o", str(tmp_path / out)]) == 0
        return json.loads(capsys.readouterr().out)

    first, second = run("a.onnx"), run("b.onnx")
    assert first["cached"] is False and second["cached"] is True
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert (tmp_path / "a.onnx.report.json").read_bytes() == (tmp_path / "b.onnx.report.json").read_bytes()
    assert second["report"] == first["report"] and second["size_bytes"] == (tmp_path / "b.onnx").stat().st_size
    # other eval data under the same path: a new key, compress runs again and measures the new data
    np.savez(tmp_path / "eval.npz", x=d.x_test[:100], y=d.y_test[:100])
    third = run("c.onnx")
    assert third["cached"] is False and third["report"]["stages"][0]["classification"]["n"] == 100
