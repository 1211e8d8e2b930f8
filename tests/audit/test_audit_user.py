"""``edgeseal audit --artifact ...``: audit files that already exist (sealed package, ONNX) on your own data."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseal.audit.user import UserAuditConfig, load_npz
from edgeseal.runtime.errors import ConfigError


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits_linear, digits_artifacts):
    import edgeseal
    from edgeseal.runtime.keys import generate_device_key, generate_publisher_key, private_pem, public_pem

    ds, split, _ = digits_linear
    d = tmp_path_factory.mktemp("user")
    publisher, device = generate_publisher_key(), generate_device_key()
    (d / "device.pem").write_bytes(private_pem(device))
    (d / "publisher.pub").write_bytes(public_pem(publisher.public_key()))
    (d / "fp32.onnx").write_bytes(digits_artifacts["onnx_bytes"])
    (d / "int8.onnx").write_bytes(digits_artifacts["int8_bytes"])
    edgeseal.seal(digits_artifacts["int8_bytes"], publisher=publisher, devices=[device.public_key()],
                  out=d / "int8.eseal")
    m, n = split.members[:300], split.nonmembers[:300]
    np.savez(d / "data.npz", x_members=ds.x[m], y_members=ds.y[m], x_nonmembers=ds.x[n], y_nonmembers=ds.y[n])
    return d


def test_cli_audits_a_sealed_package_and_its_onnx_twin(files, capsys):
    from edgeseal.cli import main

    out = files / "report"
    code = main(["--json", "audit", "--artifact", str(files / "int8.eseal"), "--artifact", str(files / "int8.onnx"),
                 "--reference", str(files / "fp32.onnx"), "--data", str(files / "data.npz"),
                 "--key", str(files / "device.pem"), "--trusted", str(files / "publisher.pub"),
                 "--clip", "0", "1", "--epsilons", "0", "0.1", "0.2", "--out", str(out), "--quiet"])
    assert code == 0  # default gate: int8 leaks no more than fp32 (+0.05 AUC)
    r = json.loads((out / "audit.json").read_text())
    printed = json.loads(capsys.readouterr().out)  # --json: one JSON object on stdout, naming the reports it wrote
    assert printed["ok"] is r["gate"]["passed"] is True and printed["violations"] == r["gate"]["violations"]
    assert {k: Path(v).name for k, v in printed["reports"].items()} == {
        "json": "audit.json", "html": "audit.html", "markdown": "audit.md"}
    assert json.loads(Path(printed["reports"]["json"]).read_text()) == r
    s = r["datasets"]["data"]["summary"]
    assert list(s["artifacts"]) == ["fp32", "int8.eseal", "int8.onnx"]
    names = list(s["artifacts"])[1:]
    sealed, onnx = (s["artifacts"][n] for n in names)
    assert sealed["sealed"] is True and onnx["sealed"] is False
    assert set(sealed["mia"]) == {"loss", "confidence"}  # no LiRA without reference models
    # the sealed package runs the very same int8 model: identical numbers, through the runtime
    assert sealed["mia"]["loss"]["auc"]["mean"] == onnx["mia"]["loss"]["auc"]["mean"]
    rob = s["robustness"]
    assert rob["curves"][names[0]]["blackbox"]["mean"] == rob["curves"][names[1]]["blackbox"]["mean"]
    assert rob["curves"]["fp32"]["blackbox"]["mean"][0] > 0.9 and rob["curves"]["fp32"]["blackbox"]["mean"][2] < 0.5
    assert s["combined"]["variants"] == names
    assert set(s["disagreement"]) == set(names) and s["disagreement"][names[0]]["start_points"] == 200
    gate_names = {c["artifact"] for c in r["gate"]["checks"]}
    assert gate_names == {*names, "combined"}
    page = (out / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "loss AUC" in page


def test_user_config_and_data_errors(tmp_path, files):
    with pytest.raises(ConfigError, match="both lo and hi"):
        UserAuditConfig(lo=0.0)
    with pytest.raises(ConfigError, match="epsilons"):
        UserAuditConfig(epsilons=(-1.0,))
    np.savez(tmp_path / "bad.npz", x_members=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="lacks"):
        load_npz(tmp_path / "bad.npz")
    xm, ym, xn, yn = load_npz(files / "data.npz")
    assert xm.shape == (300, 64) and xm.dtype == np.float32 and yn.dtype == np.int64
    from edgeseal.cli import main

    assert main(["audit", "--artifact", str(files / "int8.onnx"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert main(["audit", "--artifact", str(tmp_path / "missing.eseal"), "--reference", str(files / "fp32.onnx"),
                 "--data", str(files / "data.npz"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
