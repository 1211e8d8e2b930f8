"""The compress recipe's privacy and robustness stages: [dp], [adversarial], [defensive_prune],
[robustness] and the robust-accuracy budget."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from edgeseal.compress import compress  # noqa: E402
from edgeseal.compress.recipe import recipe_from_dict  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402

SMALL = ((4, 8, 16), 32)  # DigitsCNN widths: trains in a second


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from edgeseal.converters.train import TrainConfig, fit
    from edgeseal.converters.zoo import DigitsCNN, load_digits_split

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    d = load_digits_split()
    torch.manual_seed(0)
    model = fit(DigitsCNN(*SMALL), d.x_train, d.y_train, TrainConfig(epochs=8, lr=3e-3, show_progress=False))
    yield d, model, tmp_path_factory.mktemp("privacy")
    torch.set_num_threads(before)


def _run(model, d, table, **kw):
    recipe = recipe_from_dict({"latency_runs": 5, "max_drop": 100, **table})
    return compress(model, recipe, train=(d.x_train, d.y_train), eval=(d.x_val[:120], d.y_val[:120]),
                    show_progress=False, **kw)


def test_dp_finetune_reports_the_accountants_epsilon_and_its_scope_into_the_manifest(digits, tmp_path, capsys):
    from opacus.accountants import RDPAccountant

    import edgeseal
    from edgeseal.runtime.format import Package
    from edgeseal.runtime.keys import generate_device_key, generate_publisher_key

    d, model, _ = digits
    res = _run(model, d, {"prune": {"method": "unstructured", "amount": 0.5}, "dp": {"epsilon": 3.0, "epochs": 1}})
    p = res.report.privacy
    assert [s.stage for s in res.report.stages] == ["original", "pruned + DP fine-tuned"]
    # the spent epsilon is what Opacus' RDP accountant gives for these steps, sample rate and noise
    acc = RDPAccountant()
    acc.history = [(p["noise_multiplier"], p["sample_rate"], p["steps"])]
    assert p["epsilon"] == pytest.approx(acc.get_epsilon(p["delta"]), rel=1e-9)
    assert 2.5 < p["epsilon"] <= 3.0 + 1e-6  # calibrated to the target
    assert p["delta"] == pytest.approx(1 / (10 * len(d.y_train)))
    assert p["records"] == len(d.y_train) and p["steps"] == round(1 / p["sample_rate"])  # one epoch
    assert "pretraining" in " ".join(p["not_covered"])  # the scope says what epsilon does not cover
    # zeros from pruning survive DP-SGD
    from edgeseal.converters.prune import sparsity

    assert sparsity(res.torch_model) == pytest.approx(0.5, abs=0.01)
    # (epsilon, delta) travel into the sealed package's manifest, readable without a key
    pub, dev = generate_publisher_key(), generate_device_key()
    pkg = edgeseal.seal(res.model, publisher=pub, devices=[dev.public_key()],
                        compression_summary=res.report.manifest_summary())
    m = Package.parse(pkg).manifest.compression
    assert m["privacy"]["epsilon"] == p["epsilon"] and m["privacy"]["delta"] == p["delta"]
    assert m["privacy"]["covers"] == p["covers"] and m["stages"] == ["original", "pruned + DP fine-tuned"]
    text = res.report.render()
    assert "does NOT cover" in text and f"epsilon {p['epsilon']:.3g}" in text
    # the CLI: edgeseal seal --compress-report puts the same summary in; inspect shows epsilon without a key
    from edgeseal.cli import main
    from edgeseal.runtime.keys import private_pem, public_pem

    (tmp_path / "m.onnx").write_bytes(res.model)
    (tmp_path / "m.onnx.report.json").write_text(res.report.to_json())
    (tmp_path / "pub.pem").write_bytes(private_pem(pub))
    (tmp_path / "dev.pub").write_bytes(public_pem(dev.public_key()))
    assert main(["seal", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.eseal"), "--publisher", str(tmp_path / "pub.pem"),
                 "--device", str(tmp_path / "dev.pub"), "--compress-report", str(tmp_path / "m.onnx.report.json")]) == 0
    sealed = Package.parse((tmp_path / "m.eseal").read_bytes()).manifest.compression
    assert sealed == json.loads(json.dumps(m))
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "m.eseal")]) == 0
    assert f"differential privacy: epsilon {p['epsilon']}, delta {p['delta']} (finetune)" in capsys.readouterr().out
    assert main(["seal", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "x.eseal"), "--publisher", str(tmp_path / "pub.pem"),
                 "--device", str(tmp_path / "dev.pub"), "--compress-report", str(tmp_path / "m.onnx")]) == 2


def test_dp_distillation_trains_the_pruned_model_on_soft_labels_only(digits):
    d, model, _ = digits
    res = _run(model, d, {"prune": {"method": "structured", "ratio": 0.25}, "dp": {"mode": "distill", "epsilon": 8.0,
                                                                                    "epochs": 1}})
    p = res.report.privacy
    assert p["mode"] == "distill" and p["epsilon"] <= 8.0 + 1e-6
    assert "teacher" in " ".join(p["not_covered"])
    assert res.report.stages[-1].stage == "pruned + DP-distilled"
    assert res.report.stages[-1].params < res.report.stages[0].params


def test_privacy_and_robustness_fields_are_validated_before_any_work():
    with pytest.raises(ConfigError, match=r"\[dp\] cannot be combined with \[adversarial\]"):
        recipe_from_dict({"dp": {}, "adversarial": {}})
    with pytest.raises(ConfigError, match="qat_epochs"):
        recipe_from_dict({"dp": {}, "quantize": {"qat_epochs": 2}})
    with pytest.raises(ConfigError, match="mode = 'distill' needs a student"):
        recipe_from_dict({"dp": {"mode": "distill"}})
    with pytest.raises(ConfigError, match="go together"):
        recipe_from_dict({"min_robust_accuracy": 50})
    with pytest.raises(ConfigError, match="percentage"):
        recipe_from_dict({"min_robust_accuracy": 150, "robust_epsilon": 0.1})
    with pytest.raises(ConfigError, match=r"\[dp\] epsilon"):
        recipe_from_dict({"dp": {"epsilon": 0}})
    with pytest.raises(ConfigError, match=r"\[robustness\] give both lo and hi"):
        recipe_from_dict({"robustness": {"lo": 0.0}})
    from edgeseal.release import release_from_dict

    release = {"release": {"name": "x"}, "model": {"factory": "a:b", "state_dict": "w.pt"},
               "data": {"train": "t.npz", "eval": "e.npz"}, "target": [{"name": "linux-x86_64"}]}
    with pytest.raises(ConfigError, match=r"\[budget\] min_robust_accuracy and robust_epsilon"):
        release_from_dict({**release, "budget": {"robust_epsilon": 0.1}})
    with pytest.raises(ConfigError, match=r"\[dp\] cannot be combined with \[adversarial\]"):  # build checks it up front
        release_from_dict({**release, "compress": {"dp": {}, "adversarial": {}}})
    ok = release_from_dict({**release, "compress": {"dp": {"epsilon": 2.0}, "robustness": {"epsilons": [0.1]}},
                            "budget": {"min_robust_accuracy": 50, "robust_epsilon": 0.1}})
    assert ok.budget.robust_fields() == {"min_robust_accuracy": 50, "robust_epsilon": 0.1}
    r = recipe_from_dict({"adversarial": {"epsilon": 0.2}, "min_robust_accuracy": 10, "robust_epsilon": 0.05,
                          "robustness": {"epsilons": [0.1]}})
    assert r.robustness_spec().epsilons == (0.1, 0.05, 0.2)


def test_robust_accuracy_in_the_report_equals_an_independent_pgd_run_on_the_output(digits):
    from edgeseal.converters.adversarial import pgd
    d, model, _ = digits
    res = _run(model, d, {"defensive_prune": {"ratio": 0.25, "epochs": 1, "samples": 64},
                          "adversarial": {"epsilon": 0.1, "epochs": 1, "steps": 3},
                          "robustness": {"epsilons": [0.05, 0.1], "steps": 5, "examples": 80, "lo": 0.0, "hi": 1.0}})
    names = [s.stage for s in res.report.stages]
    assert names == ["original", "defensive pruned", "adversarial fine-tuned"]
    last = res.report.stages[-1]
    # independent: PGD with the documented settings on the returned torch model, scored by ONNX Runtime on the bytes
    import onnxruntime as ort

    s = ort.InferenceSession(res.model, providers=["CPUExecutionProvider"])
    x, y = d.x_val[:80], d.y_val[:80]
    for eps, reported in zip((0.05, 0.1), last.robust_accuracy):
        xa = pgd(res.torch_model, x, y, eps, steps=5, step=0.25 * eps, lo=0.0, hi=1.0, seed=0)
        assert np.abs(xa - x).max() <= eps + 1e-6 and xa.min() >= 0 and xa.max() <= 1
        got = float((s.run(None, {s.get_inputs()[0].name: xa})[0].argmax(1) == y).mean())
        assert reported == pytest.approx(got, abs=1e-12)
    # the defensive pruning masked whole output channels, and they stayed zero through the fine-tuning
    plan = res.report.defense
    assert plan["channels_masked"] == sum(round(0.25 * n) for n in (4, 8, 16, 32))
    conv = res.torch_model.features[0]
    dead = (conv.weight.detach().abs().sum(dim=(1, 2, 3)) == 0)
    assert int(dead.sum()) == 1  # round(0.25 * 4) channels of the first conv
    j = res.report.to_dict()
    assert j["robustness"]["stages"]["adversarial fine-tuned"]["accuracy"] == list(last.robust_accuracy)


def test_cli_exits_1_when_the_robust_accuracy_budget_is_missed(digits):
    from edgeseal.cli import main

    d, model, tmp = digits
    torch.save(model.state_dict(), tmp / "w.pt")
    np.savez(tmp / "train.npz", x=d.x_train[:200], y=d.y_train[:200])
    np.savez(tmp / "eval.npz", x=d.x_val[:100], y=d.y_val[:100])
    recipe = tmp / "r.toml"
    base = (f'latency_runs = 5\nmax_drop = 100\nrobust_epsilon = 0.1\n'
            f'[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\nstate_dict = "w.pt"\n'
            f'[data]\ntrain = "train.npz"\neval = "eval.npz"\n'
            f'[robustness]\nepsilons = [0.1]\nsteps = 5\nlo = 0.0\nhi = 1.0\n')
    # DigitsCNN's default widths do not fit these weights: use the small ones through a factory with arguments
    base = base.replace('"edgeseal.converters.zoo:DigitsCNN"', '"tests_small_cnn:make"')
    (tmp / "tests_small_cnn.py").write_text(
        "from edgeseal.converters.zoo import DigitsCNN\n\ndef make():\n    return DigitsCNN((4, 8, 16), 32)\n")
    import sys

    sys.path.insert(0, str(tmp))
    try:
        recipe.write_text("min_robust_accuracy = 99.0\n" + base)
        out = tmp / "m.onnx"
        code = main(["compress", "--recipe", str(recipe), "-o", str(out), "--quiet"])
        report = json.loads((tmp / "m.onnx.report.json").read_text())
        rob = report["budget"]["robust"]
        assert code == 1 and rob["met"] is False and rob["robust_accuracy"] < 99.0
        assert rob["robust_accuracy"] == pytest.approx(100 * report["stages"][-1]["robust_accuracy"][0])
        recipe.write_text("min_robust_accuracy = 1.0\n" + base)
        assert main(["compress", "--recipe", str(recipe), "-o", str(out), "--quiet"]) == 0
        recipe.write_text("min_robust_accuracy = 1.0\n" + base + "[dp]\n[adversarial]\n")  # refused before any work
        out.unlink()
        assert main(["compress", "--recipe", str(recipe), "-o", str(out), "--quiet"]) == 2
        assert not out.exists()
    finally:
        sys.path.remove(str(tmp))
