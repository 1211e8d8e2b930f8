import json

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError, UnsupportedError
from edgeseal.runtime.format import Manifest
from edgeseal.runtime.preprocess import ImagePreprocess, labels_metadata, manifest_labels, top_k

PIL = pytest.importorskip("PIL.Image")


def test_normalize_is_scale_mean_std_and_layout():
    pre = ImagePreprocess(size=(2, 2), resize=0, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), layout="NCHW")
    rgb = np.array([[[255, 0, 51], [0, 255, 102]], [[51, 51, 51], [255, 255, 255]]], np.uint8)
    x = pre.normalize(rgb)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    want = (rgb / 255.0 - np.array([0.5, 0.25, 0.0])) / np.array([0.5, 0.25, 1.0])
    np.testing.assert_allclose(x, want.transpose(2, 0, 1), rtol=1e-6)
    nhwc = ImagePreprocess(size=(2, 2), resize=0, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), layout="nhwc")
    np.testing.assert_allclose(nhwc.normalize(rgb), want, rtol=1e-6)


def test_resize_then_centre_crop(tmp_path):
    # a 40x20 (w x h) image: left half red, right half blue; shorter side -> 10, centre crop 10x10
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20, 0] = 255
    rgb[:, 20:, 2] = 255
    PIL.fromarray(rgb).save(tmp_path / "p.png")
    pre = ImagePreprocess(size=(10, 10), resize=10, mean=(0, 0, 0), std=(1, 1, 1))
    x = pre.load(tmp_path / "p.png")
    assert x.shape == (1, 3, 10, 10)
    # resized to 20x10, the crop is columns 5..14: the left 5 columns red, the right 5 blue
    assert x[0, 0, :, :4].min() > 0.9 and x[0, 2, :, :4].max() < 0.1
    assert x[0, 2, :, 6:].min() > 0.9 and x[0, 0, :, 6:].max() < 0.1


def test_manifest_round_trip_and_errors():
    pre = ImagePreprocess(size=(224, 224), resize=256)
    meta = {**pre.to_metadata(), **labels_metadata(["cat", "dog"])}
    m = Manifest(content_format="onnx", metadata=meta)
    back = Manifest(content_format="onnx", metadata=json.loads(json.dumps(m.to_dict()))["metadata"])
    assert ImagePreprocess.from_manifest(back) == pre
    assert manifest_labels(back) == ["cat", "dog"]
    assert json.loads(meta["preprocess"])["layout"] == "NCHW"
    with pytest.raises(ConfigError, match="carries no image preprocessing"):
        ImagePreprocess.from_manifest(Manifest(content_format="onnx", name="digits"))
    assert manifest_labels(Manifest(content_format="onnx")) is None
    with pytest.raises(ConfigError, match="layout"):
        ImagePreprocess(layout="CHWN")
    with pytest.raises(ConfigError, match="smaller than the crop"):
        ImagePreprocess(size=(224, 224), resize=100)
    with pytest.raises(ConfigError, match="std"):
        ImagePreprocess(std=(1.0, 0.0, 1.0))
    with pytest.raises(UnsupportedError, match="not an image"):
        ImagePreprocess.from_dict({"type": "text"})


def test_missing_and_undecodable_files_are_config_errors(tmp_path):
    pre = ImagePreprocess()
    with pytest.raises(ConfigError, match="does not exist"):
        pre.load(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="cannot decode .* as an image"):
        pre.load(tmp_path / "bad.jpg")


def test_top_k_orders_and_names():
    logits = np.array([0.1, 3.0, -1.0, 2.0])
    top = top_k(logits, 2, ["a", "b", "c", "d"])
    assert [t["class"] for t in top] == [1, 3] and [t["label"] for t in top] == ["b", "d"]
    p = np.exp(logits) / np.exp(logits).sum()
    assert top[0]["probability"] == pytest.approx(p[1])
