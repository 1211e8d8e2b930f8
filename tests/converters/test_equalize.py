import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeseal.converters.equalize import EqualizeConfig, channel_range_spread, conv_pairs, equalize_onnx
from edgeseal.runtime.errors import ConfigError

from cnn_graphs import conv_block, run


def _weights(model: bytes) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}


@pytest.mark.parametrize("act", ["Relu", "none"])
def test_equalization_leaves_the_float_function_unchanged(act):
    rng = np.random.default_rng(0)
    model = conv_block(rng, act=act, spread=4.0)
    x = rng.normal(size=(4, 3, 12, 12)).astype(np.float32)
    eq, report = equalize_onnx(model)
    want = run(model, x)
    np.testing.assert_allclose(run(eq, x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert report.pairs == (("conv1", "dw"), ("dw", "pw"))


def test_equalization_reduces_the_channel_range_spread():
    rng = np.random.default_rng(1)
    model = conv_block(rng, act="Relu", spread=4.0)
    before = _weights(model)
    eq, report = equalize_onnx(model)
    after = _weights(eq)
    assert channel_range_spread([before["w1"]]) > 1.0  # orders of magnitude between channels
    assert channel_range_spread([after["w1"]]) < 0.5 * channel_range_spread([before["w1"]])
    assert report.spread_after < report.spread_before
    # the converged scales equalize each pair: per channel, range of w1 == range of w2 (the depthwise filter)
    r1 = np.abs(after["w1"]).reshape(8, -1).max(1)
    r2 = np.abs(after["w2"]).reshape(8, -1).max(1)
    r3 = np.abs(after["w3"]).max(axis=(0, 2, 3))
    np.testing.assert_allclose(r2, np.sqrt(r1 * r3), rtol=1e-3)  # dw sits between: geometric mean of neighbours


def test_pairs_joined_by_relu6_are_left_alone():
    rng = np.random.default_rng(2)
    model = conv_block(rng, act="Clip")
    assert conv_pairs(model) == []
    eq, report = equalize_onnx(model)
    assert report.pairs == ()
    assert _weights(eq)["w1"].tobytes() == _weights(model)["w1"].tobytes()


def test_config_is_validated():
    with pytest.raises(ConfigError, match="iterations"):
        EqualizeConfig(iterations=0)
