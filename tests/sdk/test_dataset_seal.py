"""Sealed data sets as a first-class kind (seal --dataset, verify --data accepts it) and masking of
sensitive columns/pixels before the data leaves the host."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "targets"))
from verify_fixtures import digits, keys  # noqa: E402

import edgeseal  # noqa: E402
from edgeseal.mask import MaskConfig, mask_arrays, prepare_dataset  # noqa: E402
from edgeseal.runtime import inspect, open_payload  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402
from edgeseal.runtime.format import Kind  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseal", *args], capture_output=True, text=True, timeout=600)


def table() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    x[:, 1] = 900_000 + np.arange(20)  # a sensitive identifier-like column
    return {"x": x, "labels": np.arange(20) % 2, "ids": np.arange(1000, 1020),
            "img": rng.integers(0, 255, size=(20, 4, 4), dtype=np.uint8)}


def test_mask_columns_pixels_and_drop():
    a = table()
    before = {k: v.copy() for k, v in a.items()}
    corner = np.zeros((4, 4), bool)
    corner[:2, :2] = True
    out, summary = mask_arrays(a, MaskConfig(columns={"x": (1, 3)}, pixels={"img": corner}, drop=("ids",)))
    for k in a:
        np.testing.assert_array_equal(a[k], before[k])  # the caller's arrays are untouched
    assert "ids" not in out and set(out) == {"x", "labels", "img"}
    assert (out["x"][:, [1, 3]] == 0).all()
    np.testing.assert_array_equal(out["x"][:, [0, 2, 4]], a["x"][:, [0, 2, 4]])
    assert (out["img"][:, :2, :2] == 0).all() and out["img"].dtype == np.uint8
    np.testing.assert_array_equal(out["img"][:, 2:, :], a["img"][:, 2:, :])
    assert summary == {"fill": 0.0, "dropped": ["ids"], "arrays": {
        "img": {"masked_features": 4, "features": 16}, "x": {"masked_features": 2, "features": 5}}}
    mean, _ = mask_arrays(a, MaskConfig(columns={"x": (1,)}, fill="mean"))
    assert np.allclose(mean["x"][:, 1], a["x"][:, 1].astype(np.float64).mean())
    assert len(np.unique(mean["x"][:, 1])) == 1  # individual values gone, only the population mean left
    rounded, _ = mask_arrays(a, MaskConfig(pixels={"img": corner}, fill="mean"))
    assert rounded["img"].dtype == np.uint8


@pytest.mark.parametrize("config, needle", [
    (dict(columns={"y": (0,)}), "no array 'y'"),
    (dict(columns={"x": (5,)}), "must be in [0, 4]"),
    (dict(pixels={"img": np.ones((3, 3), bool)}), "one sample of 'img' is (4, 4)"),
    (dict(columns={"labels": (0,)}), "shape (20,)"),
    (dict(drop=("nope",)), "no array 'nope'"),
])
def test_mask_errors_name_the_array_and_the_fix(config, needle):
    with pytest.raises(ConfigError) as e:
        mask_arrays(table(), MaskConfig(**config))
    assert needle in str(e.value)
    with pytest.raises(ConfigError, match="number or 'mean'"):
        MaskConfig(fill="median")
    with pytest.raises(ConfigError, match="boolean"):
        MaskConfig(pixels={"img": np.ones((4, 4))})
    with pytest.raises(ConfigError, match="not a readable .npz"):
        prepare_dataset(b"PK\x03\x04 not really a zip", None)


def test_sealed_masked_dataset_holds_no_sensitive_value(tmp_path):
    k = keys()
    buf = io.BytesIO()
    np.savez(buf, **table())
    package = edgeseal.seal(buf.getvalue(), publisher=k["publisher_pem"], devices=[k["device_pub"]], kind="dataset",
                            mask=MaskConfig(columns={"x": (1,)}, drop=("ids",)), name="patients")
    info = inspect(package, trusted=[k["publisher_pub"]])
    assert info.manifest.kind is Kind.DATASET and info.manifest.content_format == "npz"
    masking = json.loads(info.manifest.metadata["masking"])
    assert masking["arrays"] == {"x": {"masked_features": 1, "features": 5}} and masking["dropped"] == ["ids"]
    manifest, plain = open_payload(package, key=k["device_pem"], trusted=[k["publisher_pub"]])
    payload = bytes(bytearray(plain.freeze()))  # a real copy: wipe() zeroes the frozen bytes in place
    plain.wipe()
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["img", "labels", "x"] and (npz["x"][:, 1] == 0).all()
    raw = table()
    for value in raw["x"][:, 1]:  # not one identifier reaches the device, in any encoding numpy writes
        assert np.float32(value).tobytes() not in payload
    assert raw["ids"].tobytes() not in payload


def test_npz_is_not_a_model_and_masks_need_a_dataset():
    k = keys()
    buf = io.BytesIO()
    np.savez(buf, **table())
    with pytest.raises(ConfigError, match="--dataset"):
        edgeseal.seal(buf.getvalue(), publisher=k["publisher_pem"], devices=[k["device_pub"]])
    with pytest.raises(ConfigError, match="data sets"):
        edgeseal.seal(buf.getvalue(), publisher=k["publisher_pem"], devices=[k["device_pub"]],
                      mask=MaskConfig(drop=("ids",)))


def test_cli_seal_dataset_with_masked_pixels_then_verify_accepts_it(tmp_path):
    d, k = digits(), keys()
    package = tmp_path / "model.eseal"
    edgeseal.seal(d["int8"], publisher=k["publisher_pem"], devices=[k["device_pub"]], out=package)
    refused = cli("seal", str(d["data"]), "-o", str(tmp_path / "wrong.eseal"), "--publisher", str(k["publisher_pem"]),
                  "--device", str(k["device_pub"]))
    assert refused.returncode == 2 and "--dataset" in refused.stderr and "Traceback" not in refused.stderr
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 0, :] = True  # the top row of every image
    np.save(tmp_path / "top.npy", mask)
    sealed = tmp_path / "data.eseal"
    out = cli("--json", "seal", str(d["data"]), "--dataset", "--mask-pixels", f"image:{tmp_path / 'top.npy'}",
              "-o", str(sealed), "--publisher", str(k["publisher_pem"]), "--device", str(k["device_pub"]))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kind"] == "dataset"
    shown = cli("inspect", str(sealed))
    assert "dataset: 'digits_test'" in shown.stdout and '"masked_features":8' in shown.stdout
    report = tmp_path / "report.json"
    run = cli("verify", str(package), "--data", str(sealed), "--device", "local", "--key", str(k["device_pem"]),
              "--trusted", str(k["publisher_pub"]), "--max-samples", "60", "--report", str(report))
    assert run.returncode == 0, run.stdout + run.stderr
    r = json.loads(report.read_text())
    assert r["data"]["n_samples"] == 60 and r["metrics"]["device"]["n"] == 60
    # the device really ran on the masked images: rerun the model here on masked vs original inputs
    import onnxruntime as ort

    with np.load(d["data"]) as npz:
        x, y = npz["image"][:60], npz["labels"][:60]
    xm = x.copy()
    xm[:, 0, 0, :] = 0
    sess = ort.InferenceSession(str(d["int8"]), providers=["CPUExecutionProvider"])
    acc = float((sess.run(None, {"image": xm})[0].argmax(1) == y).mean())
    assert r["metrics"]["device"]["accuracy"] == pytest.approx(acc, abs=1e-9)
    bad = cli("seal", str(d["data"]), "--mask-columns", "image:0", "-o", str(tmp_path / "x.eseal"),
              "--publisher", str(k["publisher_pem"]), "--device", str(k["device_pub"]))
    assert bad.returncode == 2 and "add --dataset" in bad.stderr
