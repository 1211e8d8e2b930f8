import numpy as np
import onnx
import pytest

from edgeseal.converters.infer import TfliteRunner
from edgeseal.converters.quantize import (
    OnnxDynamicConfig,
    OnnxStaticConfig,
    TfliteInt8Config,
    preprocess_onnx,
    quantize_onnx_dynamic,
    quantize_onnx_static,
    quantize_tflite_int8,
    tflite_op_outputs,
)
from edgeseal.runtime.errors import ConfigError



@pytest.mark.parametrize("calibration", ["minmax", "percentile", "entropy"])
def test_onnx_static_int8(exported, digits, calibration, acc):
    fp32 = exported["onnx"].model
    q = quantize_onnx_static(fp32, digits.x_train, OnnxStaticConfig(calibration=calibration))
    g = onnx.load_from_string(q).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("Conv") == 3 and ops.count("Gemm") == 2
    assert ops.count("QuantizeLinear") >= 7 and ops.count("DequantizeLinear") >= 7 + 5  # activations + weights
    # per-channel int8 weights: one scale per output channel of each conv
    w = {i.name: i for i in g.initializer}
    conv0_scale = onnx.numpy_helper.to_array(w["features.0.weight_scale"])
    assert conv0_scale.shape == (32,)
    assert onnx.numpy_helper.to_array(w["features.0.weight_quantized"]).dtype == np.int8
    assert len(q) <= 0.30 * len(fp32)
    base = acc(fp32, digits.x_test, digits.y_test)
    assert abs(acc(q, digits.x_test, digits.y_test) - base) <= 1.0


def test_onnx_static_exclusions_stay_float(exported, digits):
    fp32 = preprocess_onnx(exported["onnx"].model)
    q = quantize_onnx_static(
        fp32, digits.x_train, OnnxStaticConfig(exclude_nodes=("node_linear",), preprocess=False, per_channel=False)
    )
    g = onnx.load_from_string(q).graph
    inits = {i.name for i in g.initializer}
    assert "classifier.1.weight" in inits  # the excluded Gemm keeps its float weight
    assert "classifier.1.weight_quantized" not in inits
    assert "classifier.3.weight_quantized" in inits
    # per-tensor when per_channel is off
    scale = next(i for i in g.initializer if i.name == "features.0.weight_scale")
    assert onnx.numpy_helper.to_array(scale).shape == ()


def test_onnx_dynamic_int8(exported, digits, acc):
    fp32 = exported["onnx"].model
    q = quantize_onnx_dynamic(fp32)  # default: MatMul (ORT rewrites the Gemms as MatMul + Add)
    ops = [n.op_type for n in onnx.load_from_string(q).graph.node]
    assert ops.count("MatMulInteger") == 2 and ops.count("DynamicQuantizeLinear") == 2
    assert ops.count("Conv") == 3 and "Gemm" not in ops  # convs stay float
    linear_weights = 512 * 256 + 256 * 10
    assert len(fp32) - len(q) == pytest.approx(3 * linear_weights, rel=0.05)  # 4 -> 1 byte per weight
    q = quantize_onnx_dynamic(fp32, OnnxDynamicConfig(op_types=("MatMul", "Conv")))
    ops = [n.op_type for n in onnx.load_from_string(q).graph.node]
    assert ops.count("ConvInteger") == 3 and ops.count("MatMulInteger") == 2
    assert len(q) <= 0.30 * len(fp32)
    assert abs(acc(q, digits.x_test, digits.y_test) - acc(fp32, digits.x_test, digits.y_test)) <= 1.0


def test_tflite_full_int8(exported, digits, acc):
    fp32 = exported["tflite"].model
    q = quantize_tflite_int8(fp32, digits.x_train)
    r = TfliteRunner(q)
    assert r.input_dtype == "int8" and r.output_dtype == "int8"  # full integer, I/O included
    assert len(q) <= 0.30 * len(fp32)
    assert abs(acc(q, digits.x_test, digits.y_test) - acc(fp32, digits.x_test, digits.y_test)) <= 0.5


def test_tflite_keep_float(exported, digits):
    fp32 = exported["tflite"].model
    last = tflite_op_outputs(fp32)[-1]
    assert last == ("FULLY_CONNECTED", "serving_default_output_0_output")
    q = quantize_tflite_int8(fp32, digits.x_train[:64], TfliteInt8Config(keep_float=(last[1],)))
    from edgeseal.converters.export import tflite_ops

    ops = tflite_ops(q)
    assert ops.get("DEQUANTIZE", 0) >= 1  # the float op is fed by a dequantize
    with pytest.raises(ConfigError, match="keep_float"):
        quantize_tflite_int8(fp32, digits.x_train[:8], TfliteInt8Config(keep_float=("nope",)))


def test_calibration_data_of_the_wrong_shape(exported, digits):
    with pytest.raises(ConfigError, match=r"shape \(16, 1, 7, 7\).*expects \(N, 1, 8, 8\)"):
        quantize_onnx_static(exported["onnx"].model, np.zeros((16, 1, 7, 7), np.float32))
    with pytest.raises(ConfigError, match="representative data has shape"):
        quantize_tflite_int8(exported["tflite"].model, np.zeros((16, 64), np.float32))
    with pytest.raises(ConfigError, match="inputs"):
        quantize_onnx_static(exported["onnx"].model, [{"wrong": np.zeros((1, 1, 8, 8), np.float32)}])


def test_config_validation():
    assert OnnxStaticConfig(calibration="entropy").calibration.value == "entropy"
    with pytest.raises(ConfigError, match="calibration='kl'"):
        OnnxStaticConfig(calibration="kl")
    with pytest.raises(ConfigError, match="exclude_nodes"):
        OnnxStaticConfig(exclude_nodes="node_conv2d")
    with pytest.raises(ConfigError, match="percentile"):
        OnnxStaticConfig(percentile=10)
    with pytest.raises(ConfigError, match="range_update"):
        TfliteInt8Config(range_update="ema")
    with pytest.raises(ConfigError, match="weight_type"):
        OnnxDynamicConfig(weight_type="int4")

