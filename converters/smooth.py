"""SmoothQuant-style migration of activation outliers into weights, as an ONNX graph pass.

For a MatMul ``Y = X @ W`` with a constant ``W`` (shape ``[K, N]``), per input
channel ``j`` with activation range ``a_j = max|X[..., j]|`` (from calibration
data) and weight range ``w_j = max|W[j, :]|``, choose
``s_j = a_j**alpha / w_j**(1 - alpha)`` and rewrite ``Y = (X / s) @ (s * W)``:
exactly the same function in float, but the activation that int8 has to
represent has its outlier channels divided down and the weights (quantized
per output column, offline) take the scale up. The ``X / s`` is one
elementwise ``Mul`` per MatMul input tensor (shared by all MatMuls reading the
same tensor; other consumers, e.g. a residual Add, keep reading the original). Xiao et al., SmoothQuant (2023).

Used before ``quantize_onnx_dynamic`` / ``quantize_onnx_static``; the pass
returns a new model and leaves the input bytes alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError

from .quantize import CalibrationData, as_feeds

__all__ = ["SmoothConfig", "smooth_onnx"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothConfig:
    """``alpha`` in [0, 1] moves that much of the difficulty from activations to weights.

    ``only_nodes`` limits the pass to those MatMul nodes (empty: every MatMul with a constant
    2-D weight); ``samples`` caps the calibration feeds used to measure activation ranges.
    """

    alpha: float = 0.5
    only_nodes: tuple[str, ...] = ()
    samples: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha} must be in [0, 1]")
        if self.samples < 1:
            raise ConfigError(f"samples={self.samples} must be >= 1")
        object.__setattr__(self, "only_nodes", tuple(self.only_nodes))


def _channel_max(model: bytes, tensors: Sequence[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    from .probe import intermediate_session

    sess = intermediate_session(model, tensors)  # intermediate tensors: ORT directly, optimizations off
    names = list(tensors)
    out: dict[str, np.ndarray] = {}
    for feed in feeds:
        for n, v in zip(names, sess.run(names, feed)):
            m = np.abs(np.asarray(v, np.float32)).reshape(-1, v.shape[-1]).max(0)
            out[n] = m if n not in out else np.maximum(out[n], m)
    return out


def smooth_onnx(model: bytes, data: CalibrationData, config: SmoothConfig | None = None) -> tuple[bytes, list[str]]:
    """Return the smoothed model and the names of the MatMul nodes it rescaled."""
    import onnx
    from onnx import helper, numpy_helper

    config = config or SmoothConfig()
    feeds = as_feeds(model, data, limit=config.samples, batch_size=8)
    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    # group MatMuls by their activation input; other consumers of that tensor keep reading the original
    groups: dict[str, list[Any]] = {}
    for n in g.node:
        if n.op_type != "MatMul" or n.input[1] not in inits or n.input[0] in inits:
            continue
        if config.only_nodes and n.name not in config.only_nodes:
            continue
        if len(inits[n.input[1]].dims) != 2:
            continue
        groups.setdefault(n.input[0], []).append(n)
    if not groups:
        return model, []
    act = _channel_max(model, list(groups), feeds)
    done: list[str] = []
    for t, nodes in groups.items():
        ws = [numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for n in nodes]
        w_max = np.max(np.stack([np.abs(w).max(1) for w in ws]), axis=0)
        a_max = act[t]
        s = np.power(np.maximum(a_max, 1e-5), config.alpha) / np.power(np.maximum(w_max, 1e-5), 1.0 - config.alpha)
        s = np.clip(s, 1e-2, 1e2).astype(np.float32)
        inv_name, smoothed = f"{t}_smooth_inv_scale", f"{t}_smoothed"
        g.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv_name))
        mul = helper.make_node("Mul", [t, inv_name], [smoothed], name=f"{t}_smooth_mul")
        idx = min(list(g.node).index(n) for n in nodes)
        g.node.insert(idx, mul)
        for n, w in zip(nodes, ws):
            new_w = f"{n.input[1]}_smoothed"
            g.initializer.append(numpy_helper.from_array((w * s[:, None]).astype(np.float32), new_w))
            n.input[0], n.input[1] = smoothed, new_w
            done.append(n.name)
    # drop the now-unused original weights
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return proto.SerializeToString(), done
