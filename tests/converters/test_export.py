import numpy as np
import pytest

from edgeseal.converters.export import ExportConfig, check_ops, export_onnx, onnx_ops, tflite_ops
from edgeseal.runtime.errors import ConfigError, UnsupportedError



def test_onnx_export_structure_and_numbers(exported, digits, _trained, acc):
    r = exported["onnx"]
    assert r.format == "onnx" and r.opset == 20
    assert r.ops == {"Conv": 3, "Relu": 4, "MaxPool": 2, "Reshape": 1, "Gemm": 2}
    assert r.max_abs_error < 1e-4 and r.checked_samples == 64
    assert r.input_shape[0] is None  # free batch dimension (the runtime TensorSpec says None)
    assert r.input_shape[1:] == (1, 8, 8)
    # weights inline: the file holds the ~226k float32 parameters
    assert 226_570 * 4 < r.size_bytes < 226_570 * 4 * 1.05
    assert onnx_ops(r.model) == r.ops
    from edgeseal.converters.train import accuracy, predict_logits

    torch_acc = 100 * accuracy(predict_logits(_trained, digits.x_test), digits.y_test)
    assert acc(r.model, digits.x_test, digits.y_test) == pytest.approx(torch_acc, abs=1e-9)


def test_tflite_export_structure_and_numbers(exported):
    r = exported["tflite"]
    assert r.format == "tflite" and r.opset is None
    assert r.input_shape == (1, 1, 8, 8)
    assert r.ops["FULLY_CONNECTED"] == 2 and r.ops["MAX_POOL_2D"] == 2
    assert r.ops.get("CONV_2D", 0) + r.ops.get("DEPTHWISE_CONV_2D", 0) == 3
    assert r.max_abs_error < 1e-4
    assert tflite_ops(r.model) == r.ops
    assert 226_570 * 4 < r.size_bytes < 226_570 * 4 * 1.05


def test_op_the_target_cannot_run(digits, _trained):
    with pytest.raises(UnsupportedError, match="Gemm") as err:
        export_onnx(_trained, digits.x_test[:4], ExportConfig(supported_ops=("Conv", "Relu", "MaxPool", "Reshape")))
    assert "Gemm" in err.value.reason
    check_ops({"Conv": 1}, ())  # empty list: no check
    with pytest.raises(UnsupportedError, match="target 'rpi4' cannot run op"):
        check_ops({"Conv": 1, "Foo": 2}, ["Conv"], target="target 'rpi4'")


def test_export_config_validation():
    with pytest.raises(ConfigError, match="opset"):
        ExportConfig(opset=9)
    with pytest.raises(ConfigError, match="atol"):
        ExportConfig(atol=0)
    with pytest.raises(ConfigError, match="sample"):
        export_onnx(None, np.zeros((0, 1, 8, 8)))
