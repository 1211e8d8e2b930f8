"""One .npz reader and one data layout for every command (compress, build, search, release, verify, audit)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.evaluate import features_and_labels, read_npz

X = np.arange(24, dtype=np.float32).reshape(6, 4)
Y = np.array([0, 1, 2, 0, 1, 2])


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("arrays", [
    {"x": X, "y": Y},                   # the layout edgeseal writes
    {"input": X, "labels": Y},          # the one demo and build wrote before
    {"image": X, "label": Y},           # any single input name
    {"x": X, "input": X + 1, "labels": Y},  # several feature arrays: 'x' first
])
def test_every_layout_gives_the_same_inputs_and_labels(arrays, tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(_npz(**arrays))
    for source in (path, str(path), path.read_bytes()):
        x, y = features_and_labels(read_npz(source, "d"), "d")
        np.testing.assert_array_equal(x, X)
        np.testing.assert_array_equal(y, Y)


def test_unlabelled_and_explicit_keys():
    x, y = features_and_labels({"input": X}, "d")
    assert y is None and np.array_equal(x, X)
    x, y = features_and_labels({"a": X, "b": X + 1, "t": Y}, "d", x_key="b", y_key="t")
    np.testing.assert_array_equal(x, X + 1)
    np.testing.assert_array_equal(y, Y)


@pytest.mark.parametrize("arrays, kwargs, match", [
    ({"a": X, "b": X}, {}, r"has arrays \['a', 'b'\]: save the inputs as 'x' and the labels as 'y'"),
    ({"input": X, "labels": Y[:5]}, {}, r"6 inputs \('input'\) but 5 labels \('labels'\)"),
    ({"input": X}, {"x_key": "pixels"}, r"no array 'pixels' \(it has \['input'\]\)"),
    ({"input": X}, {"y_key": "t"}, r"no labels 't'"),
])
def test_layout_errors_name_the_arrays(arrays, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        features_and_labels(arrays, "d", **kwargs)


def test_reader_refuses_pickles_and_non_npz(tmp_path):
    evil = _npz(x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match="without pickled objects"):
        read_npz(evil, "evil")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        read_npz(pickle.dumps({"x": X}), "p")
    npy = tmp_path / "x.npy"
    np.save(npy, X)
    with pytest.raises(ConfigError, match="single .npy array"):
        read_npz(npy, "n")
    with pytest.raises(ConfigError, match="does not exist"):
        read_npz(tmp_path / "missing.npz", "m")
    with pytest.raises(ConfigError, match="holds no arrays"):
        read_npz(_npz(), "e")


def test_compress_reads_the_layout_verify_and_demo_write(tmp_path):
    """compress used to need x / y; a file in the layout demo and build wrote before works too."""
    from edgeseal.compress import load_npz

    for name, arrays in (("new", {"input": X, "labels": Y}), ("old", {"x": X, "y": Y})):
        (tmp_path / f"{name}.npz").write_bytes(_npz(**arrays))
        x, y = load_npz(tmp_path / f"{name}.npz")
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x, X)
        np.testing.assert_array_equal(y, Y)
    (tmp_path / "cal.npz").write_bytes(_npz(x=X))
    with pytest.raises(ConfigError, match="has no labels: save them as 'y'"):
        load_npz(tmp_path / "cal.npz")
    assert load_npz(tmp_path / "cal.npz", need_y=False)[1] is None


def test_compress_honours_the_recipes_x_key_and_y_key(tmp_path):
    """[data] x_key / y_key reach the reader (compress used to ignore them and look for x / y)."""
    from edgeseal.compress import read_split as _as_xy
    from edgeseal.compress.recipe import DataSpec

    (tmp_path / "d.npz").write_bytes(_npz(pixels=X, x=X + 1, target=Y, y=Y[::-1]))
    x, y = _as_xy(str(tmp_path / "d.npz"), "train", DataSpec(x_key="pixels", y_key="target"))
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    x, _ = _as_xy(str(tmp_path / "d.npz"), "calibration", DataSpec(x_key="pixels", y_key="target"))
    np.testing.assert_array_equal(x, X)
    x, y = _as_xy(str(tmp_path / "d.npz"), "train", DataSpec())  # the layout: x and y
    np.testing.assert_array_equal(x, X + 1)
    np.testing.assert_array_equal(y, Y[::-1])
