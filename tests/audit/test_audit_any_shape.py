"""``audit --artifact`` on a model whose input is not flat (the digits CNN, (N, 1, 8, 8)), LiRA with the
user's training callable, and ART's black-box attacks on a sealed package."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("art")

SMALL = ((4, 8, 16), 32)


def _train(x, y, seed, epochs=6):
    from edgeseal.converters.train import TrainConfig, fit
    from edgeseal.converters.zoo import DigitsCNN

    torch.manual_seed(seed)
    return fit(DigitsCNN(*SMALL), x, y, TrainConfig(epochs=epochs, lr=3e-3, seed=seed, show_progress=False))


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    import edgeseal
    from edgeseal.converters.export import ExportConfig, export_onnx
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from edgeseal.converters.zoo import load_digits_split
    from edgeseal.runtime.keys import generate_device_key, generate_publisher_key, private_pem, public_pem

    d = load_digits_split()
    xm, ym, xn, yn = d.x_train[:300], d.y_train[:300], d.x_test[:200], d.y_test[:200]
    model = _train(xm, ym, 0, epochs=12)
    fp32 = export_onnx(model, xm, ExportConfig(check_samples=16)).model
    int8 = quantize_onnx_static(fp32, xm, OnnxStaticConfig(samples=128))
    tmp = tmp_path_factory.mktemp("cnn")
    publisher, device = generate_publisher_key(), generate_device_key()
    (tmp / "device.pem").write_bytes(private_pem(device))
    (tmp / "publisher.pub").write_bytes(public_pem(publisher.public_key()))
    (tmp / "fp32.onnx").write_bytes(fp32)
    edgeseal.seal(int8, publisher=publisher, devices=[device.public_key()], out=tmp / "cnn.eseal")
    np.savez(tmp / "data.npz", x_members=xm, y_members=ym, x_nonmembers=xn, y_nonmembers=yn)
    return tmp, (xm, ym, xn, yn), (publisher, device)


def test_cli_audits_a_sealed_cnn_with_4d_input(cnn_files):
    from edgeseal import runtime
    from edgeseal.cli import main

    tmp, (xm, ym, xn, yn), (publisher, device) = cnn_files
    out = tmp / "report"
    code = main(["audit", "--artifact", str(tmp / "cnn.eseal"), "--reference", str(tmp / "fp32.onnx"),
                 "--data", str(tmp / "data.npz"), "--key", str(tmp / "device.pem"),
                 "--trusted", str(tmp / "publisher.pub"), "--clip", "0", "1", "--epsilons", "0", "0.1", "0.3",
                 "--queries", "30", "--examples", "40", "--decision-attack", "hopskipjump", "--out", str(out),
                 "--quiet"])
    assert code in (0, 1)  # ran to the gate (it used to crash: "Invalid rank for input")
    r = json.loads((out / "audit.json").read_text())
    data = r["datasets"]["data"]
    assert data["input_shape"] == [1, 8, 8] and data["n_features"] == 64
    seed = data["seeds"][0]
    rob = seed["robustness"]
    assert "ART square attack" in rob["attacks"]["blackbox"] and "HOPSKIPJUMP" in rob["attacks"]["hopskipjump"]
    # eps 0 is the clean accuracy of the sealed package on the attacked non-members, measured independently
    idx = np.asarray(seed["indices"]["robustness"]) - len(ym)
    model = runtime.load(tmp / "cnn.eseal", key=device, trusted=[publisher.public_key()])
    logits = model.run({model.inputs[0].name: xn[idx]})[model.outputs[0].name]
    clean = float((logits.argmax(1) == yn[idx]).mean())
    curves = rob["curves"]["cnn.eseal"]
    assert curves["blackbox"][0] == pytest.approx(clean)
    assert curves["blackbox"][2] < curves["blackbox"][0]  # the attack works at eps 0.3
    # the labels-only attack: non-increasing in eps, never above the clean accuracy
    hsj = curves["hopskipjump"]
    assert hsj[0] <= clean + 1e-12 and hsj[0] >= hsj[1] >= hsj[2]
    assert set(seed["artifacts"]["cnn.eseal"]["mia"]) == {"loss", "confidence"}  # no LiRA without --train-fn


def test_lira_with_the_users_training_callable_on_image_inputs(cnn_files):
    from edgeseal.audit.artifacts import OnnxArtifact
    from edgeseal.audit.user import UserAuditConfig, audit_artifacts

    tmp, (xm, ym, xn, yn), _ = cnn_files
    calls = []

    def train_fn(x, y, seed):
        calls.append((x.shape, seed))
        return _train(x, y, seed, epochs=3)  # a torch module: the audit runs it

    fp32 = (tmp / "fp32.onnx").read_bytes()
    ref = OnnxArtifact(name="fp32", kind="fp32", model=fp32)
    art = OnnxArtifact(name="copy", kind="fp32", model=fp32)
    cfg = UserAuditConfig(epsilons=(0.0,), queries=5, examples=10, explanation_examples=5, reference_models=2)
    r = audit_artifacts(ref, [art], x_members=xm[:100], y_members=ym[:100], x_nonmembers=xn[:100],
                        y_nonmembers=yn[:100], config=cfg, train_fn=train_fn)
    assert len(calls) == 2 and all(s[1:] == (1, 8, 8) for s, _ in calls)  # the user's model gets its own shape
    assert sum(s[0] for s, _ in calls) == 200  # balanced: every record is IN for exactly one of the two models
    mia = r["datasets"]["data"]["seeds"][0]["artifacts"]
    assert {"lira", "lira_offline"} <= set(mia["copy"]["mia"])
    assert mia["copy"]["mia"]["lira"]["auc"] == mia["fp32"]["mia"]["lira"]["auc"]  # same model, same scores
    assert 0.0 <= mia["copy"]["mia"]["lira"]["auc"] <= 1.0
    assert r["datasets"]["data"]["reference_models"]["count"] == 2
