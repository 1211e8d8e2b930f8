"""Tiny convolutional ONNX graphs built in code for the graph-pass tests."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def conv_block(rng: np.random.Generator, *, act: str = "Relu", pad: bool = False, channels: int = 8,
               spread: float = 3.0, bias_shift: float = 0.0) -> bytes:
    """x(N,3,12,12) -> [Pad] -> Conv 3x3 (3->C) -> act -> depthwise Conv 3x3 -> act -> Conv 1x1 (C->4) -> y.

    ``spread`` scales the first Conv's output channels by 10**U(-spread/2, spread/2), the per-channel range
    disparity BatchNorm folding leaves in depthwise-separable networks.
    """
    c = channels
    gain = 10 ** rng.uniform(-spread / 2, spread / 2, size=c)
    w1 = (rng.normal(size=(c, 3, 3, 3)) * gain[:, None, None, None]).astype(np.float32)
    b1 = (rng.normal(size=c) * gain + bias_shift).astype(np.float32)
    w2 = (rng.normal(size=(c, 1, 3, 3)) / gain[:, None, None, None] ** 0.5).astype(np.float32)
    b2 = rng.normal(size=c).astype(np.float32)
    w3 = rng.normal(size=(4, c, 1, 1)).astype(np.float32)
    b3 = rng.normal(size=4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (b3, "b3"))]
    nodes = []
    src = "x"
    if pad:
        inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["xp"], name="pad", mode="constant"))
        src = "xp"
    nodes.append(helper.make_node("Conv", [src, "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                                  pads=[0, 0, 0, 0] if pad else [1, 1, 1, 1]))

    def activation(t_in: str, t_out: str, name: str) -> None:
        if act == "Relu":
            nodes.append(helper.make_node("Relu", [t_in], [t_out], name=name))
        elif act == "Clip":
            if "lo" not in {i.name for i in inits}:
                inits.extend([numpy_helper.from_array(np.array(0, np.float32), "lo"),
                              numpy_helper.from_array(np.array(6, np.float32), "hi")])
            nodes.append(helper.make_node("Clip", [t_in, "lo", "hi"], [t_out], name=name))
        else:  # "none": the two Convs are joined directly
            for n in nodes:
                n.output[:] = [t_out if o == t_in else o for o in n.output]

    activation("c1", "a1", "act1")
    nodes.append(helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c))
    activation("c2", "a2", "act2")
    nodes.append(helper.make_node("Conv", ["a2", "w3", "b3"], ["y"], name="pw", kernel_shape=[1, 1]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 12, 12])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def run(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
