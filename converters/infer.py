"""Host-side runners for exported models: ONNX Runtime and LiteRT, from bytes.

The converters need to run fp32 and int8 models side by side (numerical
checks, accuracy, latency). These runners take the model bytes, accept
float32 batches and hide int8 input/output quantization of full-integer
TFLite models. On the device, ``edgeseal.runtime`` does the same job for
sealed packages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

__all__ = ["OnnxRunner", "TfliteRunner", "runner_for", "detect_format"]


def detect_format(model: bytes) -> str:
    """'onnx' or 'tflite', read off the bytes (ConfigError for anything else)."""
    from edgeseal.targets import detect_format as model_format

    return model_format(bytes(model)).value


class OnnxRunner:
    """One ONNX Runtime session on the CPU; ``run(x)`` maps a float batch to the first output."""

    format = "onnx"

    def __init__(self, model: bytes, *, threads: int | None = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def run_batched(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        fixed = self.input_shape[0]
        if isinstance(fixed, int) and fixed > 0:
            batch_size = fixed
        return np.concatenate([self.run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


class TfliteRunner:
    """One LiteRT interpreter (XNNPACK on the CPU); quantizes int8 inputs and dequantizes int8 outputs."""

    format = "tflite"

    def __init__(self, model: bytes, *, threads: int | None = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=bytes(model), num_threads=threads or 1)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.input_dtype = np.dtype(self._in["dtype"]).name
        self.output_dtype = np.dtype(self._out["dtype"]).name

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape) != self.input_shape:
            self.interpreter.resize_tensor_input(self._in["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]
            self._out = self.interpreter.get_output_details()[0]
            self.input_shape = tuple(x.shape)
        dtype = np.dtype(self._in["dtype"])
        if dtype != np.float32:
            scale, zp = self._in["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])
        if y.dtype != np.float32:
            scale, zp = self._out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        return y

    def run_batched(self, x: np.ndarray, batch_size: int = 1) -> np.ndarray:
        batch_size = self.input_shape[0] if self.input_shape and self.input_shape[0] > 0 else batch_size
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            if len(xb) < batch_size:  # pad the last batch to the model's fixed batch
                pad = np.zeros((batch_size - len(xb), *xb.shape[1:]), np.float32)
                out.append(self.run(np.concatenate([xb, pad]))[: len(xb)])
            else:
                out.append(self.run(xb))
        return np.concatenate(out)


def runner_for(model: bytes, *, threads: int | None = 1) -> Any:
    """An OnnxRunner or TfliteRunner, chosen by the file's bytes."""
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise ConfigError(f"expected model bytes, got {type(model).__name__}")
    return TfliteRunner(bytes(model), threads=threads) if detect_format(bytes(model)) == "tflite" else OnnxRunner(bytes(model), threads=threads)
