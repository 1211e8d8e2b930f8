"""Weight clustering (weight sharing) as in Han et al.'s Deep Compression, under an accuracy budget.

Each weight tensor of a Conv / ConvTranspose / Gemm / MatMul is replaced by
``centroids[labels]``: 1-D k-means with 2..256 centroids per tensor (or per
output channel, ``per_channel``), linearly initialised between the smallest and
largest weight — the initialisation Han et al. found best, and deterministic.
Pruned weights stay pruned: exact zeros are left out of k-means and keep 0.0 as
their own centroid (``keep_zero``).

How many centroids each layer gets is decided on the exported ONNX model,
after any batch-norm folding, so the clustered values are the ones that ship:

1. sensitivity: for every layer and every candidate width, cluster that layer
   alone and measure the output noise on a probe batch (noise power / signal
   power of the model output, one ONNX Runtime session, weights fed as inputs);
2. a greedy path from every layer at the widest candidate down to every layer at the
   narrowest: each step narrows the layer that adds the least noise per stored bit saved
   (indices plus codebooks: per-channel codebooks of 256 entries cost more than they save
   on small channels), so the most sensitive layers keep the most centroids;
3. bisection along the path for the smallest model whose ``score`` (accuracy
   points, top-1 agreement ... — the caller's) stays within ``max_drop`` of the reference.

``finetune_centroids`` then trains the shared values in PyTorch: each weight
reads its centroid, so the gradient of a centroid is the sum of the gradients of
the weights sharing it (Han et al. §3.1); zero centroids stay 0. The encoded
size of a model is ``encoded_size`` (``edgeseal.runtime.codebook`` records +
the graph without those weights, zlib). Clustering composes with static int8
(QDQ): the int8 weights of a clustered layer take at most as many values per
channel as it had centroids, and the codec stores int8 codebooks as well.

``method="grid"`` (entropy-constrained scalar quantization) replaces k-means: each output channel gets a
uniform grid (step = a multiple of its RMS), the integer levels of the whole tensor form *one* codebook
(<= 255 entries, so no per-channel codebook to pay for) whose indices the codec entropy-codes, and the channel
scales follow the layer as a ``Mul`` (``grid_model``; ONNX Runtime folds it back into a Conv at load). The
search measures each candidate's encoded bytes (the actual record) and walks the lower convex hull of
(bytes, output noise) per layer; a layer can also stay as it is. ``converters.grid_finetune`` then distils the
channel scales and biases from the float model without touching a level.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeseal.runtime import codebook
from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = [
    "Method",
    "adaround_grids",
    "GRID_STEPS",
    "ClusterConfig",
    "GridTensor",
    "grid_array",
    "grid_weights",
    "grid_model",
    "ClusteredTensor",
    "LayerCluster",
    "ClusterReport",
    "EncodedSize",
    "kmeans_1d",
    "cluster_array",
    "weight_initializers",
    "cluster_onnx",
    "apply_clusters",
    "finetune_centroids",
    "encoded_size",
    "clustered_tensors",
    "codebook_model",
]

_WEIGHT_OPS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "Gather": 0}  # op -> weight input


class Method(str, enum.Enum):
    """How a layer's weights are made codebook-able.

    ``KMEANS``: Han et al.'s weight sharing, 2**bits k-means centroids per tensor or per output channel.
    ``GRID``: entropy-constrained scalar quantization — a uniform grid per output channel (step = ``steps[i]`` x that
    channel's RMS) whose integer levels form one small per-tensor codebook; the channel scales become a ``Mul`` after
    the layer (ONNX Runtime folds it back into the weights at load). With entropy coding of the indices this costs
    about ``h(w) - log2(step)`` bits per weight, fewer than k-means at the same error, and the codebook is one per tensor.
    """

    KMEANS = "kmeans"
    GRID = "grid"


#: grid steps tried per layer, in units of each output channel's RMS: 2**(-k/2), from 1 down to 1/64
GRID_STEPS: tuple[float, ...] = tuple(2.0 ** (-k / 2) for k in range(13))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """Clustering under an accuracy budget.

    ``bits`` are the candidate index widths per layer (``2**bits`` centroids: 1 -> 2, 8 -> 256).
    ``max_drop`` is the allowed drop of the caller's score (accuracy points) against the reference.
    Tensors under ``min_params`` elements (biases, tiny layers) stay as they are; so do ``exclude``.
    ``epochs`` > 0 fine-tunes the centroids (``finetune_centroids``) when a torch model is given.
    ``method="grid"`` replaces k-means by a uniform grid per output channel (:class:`Method`); its candidate
    steps are ``steps`` (relative to each channel's RMS; ``bits``, ``per_channel`` and ``keep_zero`` do not apply),
    and the search trades output noise against each layer's measured encoded bytes. ``bias_correction`` (grid)
    subtracts from each layer's bias the mean output shift its grid causes, ``(W_grid - W) . E[x]`` with ``E[x]``
    the per-channel mean of the layer's input in the float model on the probe (Nagel et al. 2019, §4.2).
    ``max_bytes`` (grid) caps the layers' measured encoded bytes (records + scales, not the graph): the search
    starts at the finest allocation under the cap, so the model returned is never larger (``report.met`` says
    whether the score budget held there).
    ``adaround`` > 0 (grid): once the allocation is chosen, AdaRound learns its rounding (:func:`adaround_grids`,
    that many steps per layer on ``adaround_samples`` probe inputs): the same steps and scales, each level the floor or
    the ceiling of the scaled weight, chosen for the layer's output; the report then gives the rounded model's
    score and sizes (the allocation itself was chosen with nearest rounding).
    """

    method: Method = Method.KMEANS
    steps: tuple[float, ...] = GRID_STEPS
    bits: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    max_drop: float = 1.0
    per_channel: bool = False
    keep_zero: bool = True
    min_params: int = 256
    exclude: tuple[str, ...] = ()
    iterations: int = 30
    probe_samples: int = 128
    epochs: int = 0
    lr: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    bias_correction: bool = True
    max_bytes: int | None = None
    adaround: int = 0
    adaround_samples: int = 64

    def __post_init__(self) -> None:
        bits = tuple(sorted(dict.fromkeys(self.bits)))
        if not bits or any(not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 8 for b in bits):
            raise ConfigError(f"[cluster] bits={list(self.bits)} must be index widths 1..8 (2..256 centroids)")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "exclude", tuple(self.exclude))
        try:
            object.__setattr__(self, "method", Method(self.method))
        except ValueError:
            raise ConfigError(f"[cluster] method={self.method!r} must be one of "
                              f"{', '.join(repr(m.value) for m in Method)}") from None
        steps = tuple(sorted(set(self.steps), reverse=True)) if isinstance(self.steps, (list, tuple)) else ()
        if not steps or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 16 for x in steps):
            raise ConfigError(f"[cluster] steps={self.steps!r} must be grid steps in (0, 16], in units of each "
                              "channel's RMS (e.g. [0.5, 0.25, 0.125])")
        object.__setattr__(self, "steps", tuple(float(x) for x in steps))
        if self.max_bytes is not None and (self.method is not Method.GRID or isinstance(self.max_bytes, bool)
                                           or not isinstance(self.max_bytes, int) or self.max_bytes < 1):
            raise ConfigError(f"[cluster] max_bytes={self.max_bytes!r} must be a byte count >= 1, with method = 'grid'")
        for name in ("adaround", "adaround_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "adaround" else 1):
                raise ConfigError(f"[cluster] {name}={v!r} must be an integer >= {0 if name == 'adaround' else 1}")
        if self.adaround and self.method is not Method.GRID:
            raise ConfigError("[cluster] adaround learns the rounding of grids: it needs method = 'grid'")
        if self.method is Method.GRID and self.epochs:
            raise ConfigError("[cluster] epochs > 0 fine-tunes k-means centroids; method = 'grid' has no centroid "
                              "fine-tuning: set epochs = 0 (or method = 'kmeans')")
        checks = [
            (isinstance(self.max_drop, (int, float)) and self.max_drop >= 0, f"[cluster] max_drop={self.max_drop!r} must be >= 0 points"),
            (self.min_params >= 1, f"[cluster] min_params={self.min_params} must be >= 1"),
            (self.iterations >= 1, f"[cluster] iterations={self.iterations} must be >= 1"),
            (self.probe_samples >= 1, f"[cluster] probe_samples={self.probe_samples} must be >= 1"),
            (self.epochs >= 0, f"[cluster] epochs={self.epochs} must be >= 0"),
            (self.lr > 0, f"[cluster] lr={self.lr} must be > 0"),
            (self.batch_size >= 1, f"[cluster] batch_size={self.batch_size} must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# --------------------------------------------------------------------------- k-means


def kmeans_1d(values: np.ndarray, k: int, *, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(centroids ascending float32, labels) of 1-D k-means with linear initialisation. Deterministic.

    Labels are assigned to the nearest centroid through the midpoints (exact in 1-D); an empty
    cluster keeps its centroid. Fewer distinct values than ``k`` give one centroid per value.
    """
    v = np.asarray(values, np.float32).reshape(-1)
    if v.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    distinct = np.unique(v)
    if len(distinct) <= k:
        return distinct.astype(np.float32), np.searchsorted(distinct, v)
    c = np.linspace(float(v.min()), float(v.max()), k).astype(np.float64)
    v64 = v.astype(np.float64)
    for _ in range(iterations):
        labels = np.searchsorted((c[1:] + c[:-1]) / 2, v64)
        sums = np.bincount(labels, weights=v64, minlength=k)
        counts = np.bincount(labels, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.allclose(new, c, rtol=0, atol=1e-12):
            break
        c = np.sort(new)
    c32 = c.astype(np.float32)
    labels = np.searchsorted((c32[1:].astype(np.float64) + c32[:-1]) / 2, v64)
    return c32, labels


@dataclasses.dataclass(frozen=True)
class ClusteredTensor:
    """``values == centroids[group][labels]``: the clustered weights, the codebook(s) and the indices."""

    values: np.ndarray
    centroids: tuple[np.ndarray, ...]  # one ascending float32 array per group
    labels: np.ndarray  # int64, shaped like values

    @property
    def groups(self) -> int:
        return len(self.centroids)


def cluster_array(w: np.ndarray, bits: int, *, per_channel: bool = False, keep_zero: bool = True,
                  iterations: int = 30) -> ClusteredTensor:
    """Cluster one float32 tensor to at most ``2**bits`` values per tensor (or per slice of axis 0).

    With ``keep_zero`` exact zeros (pruned weights) are not clustered: 0.0 is one of the ``2**bits``
    entries and every other weight goes to one of the remaining ``2**bits - 1`` centroids.
    """
    w = np.asarray(w, np.float32)
    if not 1 <= bits <= 8:
        raise ConfigError(f"bits={bits} must be 1..8")
    k = 1 << bits
    rows = w.reshape(w.shape[0], -1) if per_channel and w.ndim >= 1 else w.reshape(1, -1)
    out = np.empty_like(rows)
    labels = np.empty(rows.shape, np.int64)
    books = []
    for g, row in enumerate(rows):
        zero = (row == 0) if keep_zero else np.zeros(row.shape, bool)
        if zero.any():
            c_nz, lab_nz = kmeans_1d(row[~zero], k - 1, iterations=iterations)
            c = np.unique(np.concatenate([c_nz, np.zeros(1, np.float32)]))  # a centroid at 0.0 merges with it
            lab = np.empty(row.shape, np.int64)
            lab[~zero] = np.searchsorted(c, c_nz[lab_nz])
            lab[zero] = np.searchsorted(c, np.float32(0))
        else:
            c, lab = kmeans_1d(row, k, iterations=iterations)
        books.append(c)
        labels[g] = lab
        out[g] = c[lab]
    return ClusteredTensor(out.reshape(w.shape), tuple(books), labels.reshape(w.shape))


# --------------------------------------------------------------------------- uniform grids (entropy-constrained)


@dataclasses.dataclass(frozen=True)
class GridTensor:
    """``values == ints * scales`` (float32, scales broadcast along ``axis``): a uniform grid per output channel.

    ``ints`` holds the levels as float32, in units of the step: integers, plus tail centroids when the range is
    wide (what the one per-tensor codebook stores, at most 255 of them);
    ``scales`` the per-channel step (float32, ``step`` x the channel's RMS; 1.0 for an all-zero channel).
    """

    values: np.ndarray
    ints: np.ndarray
    scales: np.ndarray
    axis: int
    step: float
    #: per output channel, subtracted from the layer's bias by ``grid_model``: the mean output shift the grid causes
    #: (bias correction, ``ClusterConfig.bias_correction``); None: the bias stays
    bias_shift: np.ndarray | None = None

    @property
    def groups(self) -> int:
        return int(self.scales.size)

    @property
    def levels(self) -> int:
        """Distinct integer levels of the whole tensor (its codebook's entries)."""
        return int(np.unique(self.ints).size)

    def entropy_bits(self) -> float:
        """Order-0 entropy of the levels, bits per weight (what an ideal symbol coder would spend)."""
        _, counts = np.unique(self.ints, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())


def _channel_view(w: np.ndarray, axis: int) -> np.ndarray:
    """(channels, elements per channel) view of ``w`` with the channel axis ``axis`` first."""
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


#: levels a grid spends on each tail when its range does not fit in one codebook (256 entries)
GRID_TAIL_LEVELS = 16


def grid_array(w: np.ndarray, step: float, *, axis: int = 0) -> GridTensor:
    """Quantize ``w`` to a uniform grid per slice of ``axis``.

    ``scale_c = float32(step * rms_c)`` and ``u = w / scale_c``; the tensor's levels are the integers
    ``-K..K`` and, when ``|u|`` reaches beyond 127 (a step too fine for the range to fit in one codebook),
    ``K = 127 - GRID_TAIL_LEVELS`` and up to ``GRID_TAIL_LEVELS`` k-means centroids of the values beyond ``K + 0.5``
    on each side (rare outliers keep a bounded error instead of being clipped). Every weight takes its nearest
    level (ties: the lower one); ``values = float32(level) * scale_c``. At most 255 levels: one codebook.
    """
    w = np.asarray(w, np.float32)
    if w.ndim < 1 or not -w.ndim <= axis < w.ndim:
        raise ConfigError(f"grid quantization needs a channel axis; got axis={axis} for shape {w.shape}")
    if not step > 0:
        raise ConfigError(f"grid step={step!r} must be > 0")
    axis %= w.ndim
    rows = _channel_view(w, axis).astype(np.float64)
    rms = np.sqrt(np.mean(rows ** 2, axis=1)) if rows.shape[1] else np.zeros(rows.shape[0])
    scales = (step * rms).astype(np.float32)
    scales[~(scales > 0) | ~np.isfinite(scales)] = 1.0  # an all-zero channel (or an underflow): its levels are 0
    u = rows / scales.astype(np.float64)[:, None]
    reach = float(np.abs(u).max()) if u.size else 0.0
    if reach < 127.5:
        levels = np.arange(-127, 128, dtype=np.float64)
    else:
        k = 127 - GRID_TAIL_LEVELS
        core = np.arange(-k, k + 1, dtype=np.float64)
        hi, lo = u[u > k + 0.5], u[u < -k - 0.5]
        tails = [kmeans_1d(t, GRID_TAIL_LEVELS)[0].astype(np.float64) for t in (lo, hi) if t.size]
        levels = np.unique(np.concatenate([core, *tails]).astype(np.float32)).astype(np.float64)
    idx = np.searchsorted((levels[1:] + levels[:-1]) / 2, u, side="left")
    ints32 = levels[idx].astype(np.float32)
    values = ints32 * scales[:, None]
    shape = (w.shape[axis],) + tuple(d for i, d in enumerate(w.shape) if i != axis)
    back = lambda a: np.ascontiguousarray(np.moveaxis(a.reshape(shape), 0, axis))  # noqa: E731
    return GridTensor(back(values), back(ints32), scales, axis, float(step))


# --------------------------------------------------------------------------- ONNX models


def weight_initializers(model: bytes, *, min_params: int = 256, exclude: Sequence[str] = ()) -> dict[str, str]:
    """float32 initializers that are the weight input of a Conv / ConvTranspose / Gemm / MatMul (or the table of a
    Gather: embeddings) -> that node's name."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name: i for i in g.initializer}
    out: dict[str, str] = {}
    for node in g.node:
        idx = _WEIGHT_OPS.get(node.op_type)
        if idx is None or len(node.input) <= idx:
            continue
        for name in (node.input[idx], node.input[0]) if node.op_type == "MatMul" else (node.input[idx],):
            init = inits.get(name)
            if (init is not None and init.data_type == onnx.TensorProto.FLOAT and math.prod(init.dims) >= min_params
                    and name not in exclude and node.name not in exclude):
                out.setdefault(name, node.name or node.op_type)
    return out


def apply_clusters(model: bytes, tensors: Mapping[str, np.ndarray]) -> bytes:
    """``model`` with the named initializers replaced by the given float32 arrays (same shapes)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    found = set()
    for init in proto.graph.initializer:
        if init.name in tensors:
            new = np.asarray(tensors[init.name], np.float32)
            if tuple(new.shape) != tuple(init.dims):
                raise ConfigError(f"clustered tensor {init.name!r} has shape {new.shape}, the model's is {tuple(init.dims)}")
            init.CopyFrom(numpy_helper.from_array(new, init.name))
            found.add(init.name)
    missing = set(tensors) - found
    if missing:
        raise ConfigError(f"the model has no initializers {sorted(missing)}")
    return proto.SerializeToString()


def grid_weights(model: bytes, *, min_params: int = 256, exclude: Sequence[str] = ()) -> dict[str, tuple[str, int]]:
    """Weights a per-channel grid can take -> (node, channel axis): the weight (input 1, an initializer read by that
    node only) of a Conv (axis 0), of a Gemm with ``transA = 0`` (axis 0 with ``transB``, else 1) or of a MatMul
    with a 2-D weight (axis 1), whose bias, if any, is an initializer. Others (ConvTranspose, Gather, a MatMul's
    first input, shared weights) are left out: the channel scale could not follow as one ``Mul``."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name: i for i in g.initializer}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in g.output}
    candidates = weight_initializers(model, min_params=min_params, exclude=exclude)
    out: dict[str, tuple[str, int]] = {}
    for n in g.node:
        if len(n.input) < 2 or n.input[1] not in candidates or readers[n.input[1]] != 1 or n.input[1] in outputs:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        dims = tuple(inits[n.input[1]].dims)
        bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if bias is not None and (bias not in inits or readers[bias] != 1):
            continue
        if n.op_type == "Conv" and len(dims) >= 3:
            axis = 0
        elif n.op_type == "Gemm" and not attrs.get("transA", 0) and len(dims) == 2:
            axis = 0 if attrs.get("transB", 0) else 1
        elif n.op_type == "MatMul" and len(dims) == 2 and bias is None:
            axis = 1
        else:
            continue
        out[n.input[1]] = (n.name or n.op_type, axis)
    return out


def grid_model(model: bytes, grids: Mapping[str, GridTensor]) -> bytes:
    """``model`` with each named weight replaced by its grid's integer levels and the channel scales applied after
    the layer: ``Y = layer(x, ints) * scales (+ bias)`` — the bias moves to an ``Add`` after the ``Mul``
    (a Gemm's ``beta * C``). ONNX Runtime's basic fusions fold the ``Mul``/``Add`` of a Conv back into its weights
    and bias at load. Only weights of :func:`grid_weights` are accepted."""
    import onnx
    from onnx import helper, numpy_helper

    allowed = grid_weights(model, min_params=1)
    bad = sorted(set(grids) - set(allowed))
    if bad:
        raise ConfigError(f"weights {bad} cannot take a per-channel grid (see grid_weights: Conv, Gemm with transA=0, "
                          "MatMul with a 2-D weight, weight and bias initializers read by that node only)")
    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    taken = {i.name for i in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name

    nodes = []
    for node in g.node:
        nodes.append(node)
        w = node.input[1] if len(node.input) > 1 else ""
        if w not in grids:
            continue
        grid = grids[w]
        if tuple(grid.ints.shape) != tuple(inits[w].dims) or grid.axis != allowed[w][1]:
            raise ConfigError(f"grid for {w!r} has shape {grid.ints.shape} axis {grid.axis}; the model's weight is "
                              f"{tuple(inits[w].dims)} with channels on axis {allowed[w][1]}")
        inits[w].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(grid.ints, np.float32), w))
        rank = len(inits[w].dims)
        shape = (grid.groups,) + (1,) * (rank - 2) if node.op_type == "Conv" else (grid.groups,)
        scale = fresh(f"{w}_grid_scale")
        g.initializer.append(numpy_helper.from_array(grid.scales.reshape(shape), scale))
        out = node.output[0]
        node.output[0] = fresh(f"{out}_grid")
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        shift = None if grid.bias_shift is None else np.asarray(grid.bias_shift, np.float64).reshape(-1)
        if bias is None and shift is None:
            nodes.append(helper.make_node("Mul", [node.output[0], scale], [out], name=fresh(f"{node.name}_grid_scale")))
            continue
        if bias is None:
            b, bias = np.zeros(grid.groups, np.float32), fresh(f"{w}_grid_bias")
            g.initializer.append(numpy_helper.from_array(b, bias))
            inits[bias] = g.initializer[-1]
        else:
            b = numpy_helper.to_array(inits[bias]).astype(np.float32)
            if node.op_type == "Gemm":  # C scaled by beta; the node keeps alpha and loses C
                beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
                b = (np.float32(beta) * b).astype(np.float32) if beta != 1.0 else b
                for a in list(node.attribute):
                    if a.name == "beta":
                        node.attribute.remove(a)
            del node.input[2]
        if shift is not None:
            b = (np.broadcast_to(b, np.broadcast_shapes(b.shape, shift.shape)).astype(np.float64) - shift).astype(np.float32)
        if node.op_type == "Conv":
            b = b.reshape(shape)
        inits[bias].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(b), bias))
        scaled = fresh(f"{out}_grid_scaled")
        nodes.append(helper.make_node("Mul", [node.output[0], scale], [scaled], name=fresh(f"{node.name}_grid_scale")))
        nodes.append(helper.make_node("Add", [scaled, bias], [out], name=fresh(f"{node.name}_grid_bias")))
    del g.node[:]
    g.node.extend(nodes)
    return proto.SerializeToString()


def _probe_session(model: bytes, names: Sequence[str]) -> Any:
    """One ORT session in which the named initializers are also graph inputs, so a run can feed other values
    (ORT directly: feeding weights per run is a probe, not how a model is run; see ``converters.probe``)."""
    from .probe import override_session

    return override_session(model, names)


@dataclasses.dataclass(frozen=True)
class LayerCluster:
    """One clustered weight tensor: where it is, how many centroids, and what it costs in noise."""

    name: str  # the initializer
    node: str
    params: int
    bits: int
    centroids: int  # distinct values per group actually used (max over groups)
    groups: int
    zeros: float  # fraction of exact zeros (pruned)
    weight_sqnr_db: float  # of the clustered weights vs the original ones
    output_noise: float  # model-output noise power / signal power on the probe with only this layer clustered
    step: float | None = None  # method "grid": the step, in units of each channel's RMS
    encoded_bytes: int | None = None  # method "grid": this tensor's codebook record (auto coding) + its float32 scales
    entropy_bits: float | None = None  # method "grid": order-0 entropy of its levels, bits per weight

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ClusterStep:
    """One point of the path that was scored: bits stored (indices + codebooks, before entropy coding) and the drop."""

    stored_bits: int
    drop: float
    bits: dict[str, int]
    steps: dict[str, float] | None = None  # method "grid": the step of each layer (then stored_bits = 8 x encoded bytes)


@dataclasses.dataclass(frozen=True)
class ClusterReport:
    """What clustering did: per layer (centroids, bits, error), the scored steps, the budget verdict."""

    layers: tuple[LayerCluster, ...]
    reference_score: float
    score: float
    max_drop: float
    steps: tuple[ClusterStep, ...]
    finetuned: tuple[str, ...] = ()  # torch parameters whose centroids were fine-tuned
    score_before_finetune: float | None = None
    #: grids rounded again by AdaRound (ClusterConfig.adaround): its per-layer report and the score before it
    adaround: Any = None
    score_before_adaround: float | None = None

    @property
    def drop(self) -> float:
        return self.reference_score - self.score

    @property
    def met(self) -> bool:
        return self.drop <= self.max_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_score": self.reference_score, "score": self.score, "drop": self.drop, "max_drop": self.max_drop,
            "met": self.met, "score_before_finetune": self.score_before_finetune, "finetuned": list(self.finetuned),
            "score_before_adaround": self.score_before_adaround,
            "adaround": None if self.adaround is None else self.adaround.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "steps": [dataclasses.asdict(s) for s in self.steps],
        }

    def summary(self) -> str:
        lines = [f"{'layer':<40}{'params':>10}{'bits':>6}{'centroids':>11}{'zeros':>8}{'SQNR dB':>9}{'noise':>10}"]
        for c in self.layers:
            lines.append(f"{c.node[:39]:<40}{c.params:>10,}{c.bits:>6}{c.centroids:>11}{c.zeros:>8.1%}"
                         f"{c.weight_sqnr_db:>9.1f}{c.output_noise:>10.2e}")
        tuned = f"; centroids fine-tuned in {len(self.finetuned)} layers (before: {self.score_before_finetune:.2f})" \
            if self.finetuned else ""
        if self.adaround is not None:
            tuned += (f"; rounding learned by AdaRound in {len(self.adaround.layers)} layers "
                      f"(before: {self.score_before_adaround:.2f})")
        verdict = "within" if self.met else "OVER"
        lines.append(f"score {self.score:.2f} vs {self.reference_score:.2f}: drop {self.drop:.2f}, {verdict} the "
                     f"{self.max_drop:g}-point budget; {len(self.steps)} allocations scored{tuned}")
        return "\n".join(lines)


def _sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    noise = float(np.sum((ref.astype(np.float64) - approx) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


def _path(noise: Mapping[str, Mapping[int, float]], cost: Callable[[str, int], int],
          bits: Sequence[int]) -> list[dict[str, int]]:
    """Allocations from every layer at max(bits) down to every layer at min(bits), greedy on added noise per stored
    bit saved (``cost(layer, bits)``: index bits plus codebook bits of that layer at that width)."""
    current = {name: bits[-1] for name in noise}
    path = [dict(current)]
    while True:
        best, best_cost = None, math.inf
        for name, b in current.items():
            i = bits.index(b)
            if i == 0:
                continue
            lower = bits[i - 1]
            added = noise[name][lower] - noise[name][b]
            saved = cost(name, b) - cost(name, lower)
            ratio = max(added, 0.0) / saved if saved > 0 else math.inf
            if ratio < best_cost or (ratio == best_cost and best is not None and name < best[0]):
                best, best_cost = (name, lower), ratio
        if best is None:
            return path
        current[best[0]] = best[1]
        path.append(dict(current))


def cluster_onnx(
    model: bytes,
    probe: np.ndarray | Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    score: Callable[[bytes], float],
    config: ClusterConfig | None = None,
    *,
    reference_score: float | None = None,
) -> tuple[bytes, ClusterReport, dict[str, ClusteredTensor]]:
    """Cluster the weights of an ONNX model as finely as ``score`` allows within ``config.max_drop``.

    ``probe``: a float batch for a single-input model, a feed dict or a list of them, for the per-layer noise;
    ``score(model_bytes)``: higher is better, in the units of ``max_drop`` (e.g. accuracy points).
    Returns the clustered model, the report and the clustered tensors by initializer name
    (:class:`ClusteredTensor`; :class:`GridTensor` for ``method="grid"``, whose model is :func:`grid_model`'s).
    When even the widest candidate misses the budget it returns that one (``report.met`` False).
    """
    import onnx
    from onnx import numpy_helper

    config = config or ClusterConfig()
    if config.method is Method.GRID:
        return _cluster_grid(model, probe, score, config, reference_score)
    targets = weight_initializers(model, min_params=config.min_params, exclude=config.exclude)
    if not targets:
        raise UnsupportedError("no Conv/Gemm/MatMul float32 weight has at least "
                               f"{config.min_params} elements; nothing to cluster (lower [cluster] min_params)",
                               reason="nothing to cluster")
    proto = onnx.load_from_string(model)
    originals = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer if i.name in targets}
    sess = _probe_session(model, list(targets))
    feeds = _feeds(sess, probe, config.probe_samples, set(targets))
    base = _outputs_all(sess, feeds, {})
    power = sum(float(np.mean(b.astype(np.float64) ** 2)) for b in base) or 1.0
    cache: dict[tuple[str, int], ClusteredTensor] = {}
    noise: dict[str, dict[int, float]] = {}
    for name in targets:
        noise[name] = {}
        for b in config.bits:
            ct = cache[name, b] = cluster_array(originals[name], b, per_channel=config.per_channel,
                                                keep_zero=config.keep_zero, iterations=config.iterations)
            out = _outputs_all(sess, feeds, {name: ct.values})
            noise[name][b] = sum(float(np.mean((o.astype(np.float64) - r) ** 2)) for o, r in zip(out, base)) / power
    params = {n: int(originals[n].size) for n in targets}
    groups = {n: cache[n, config.bits[0]].groups for n in targets}

    def stored_bits(name: str, b: int) -> int:  # indices + float32 codebooks (one per group)
        return params[name] * b + groups[name] * (1 << b) * 32

    path = _path(noise, stored_bits, list(config.bits))
    ref = float(score(model)) if reference_score is None else float(reference_score)
    steps: dict[int, ClusterStep] = {}
    built: dict[int, bytes] = {}

    def drop_at(i: int) -> float:
        if i not in steps:
            built[i] = apply_clusters(model, {n: cache[n, b].values for n, b in path[i].items()})
            steps[i] = ClusterStep(sum(stored_bits(n, b) for n, b in path[i].items()), ref - float(score(built[i])),
                                   path[i])
        return steps[i].drop

    lo = _bisect(len(path), drop_at, config.max_drop)
    chosen = path[lo]
    layers = tuple(
        LayerCluster(
            name=n, node=targets[n], params=params[n], bits=b,
            centroids=max(len(np.unique(c)) for c in cache[n, b].centroids), groups=cache[n, b].groups,
            zeros=float(np.mean(originals[n] == 0)), weight_sqnr_db=_sqnr_db(originals[n], cache[n, b].values),
            output_noise=noise[n][b],
        )
        for n, b in chosen.items()
    )
    report = ClusterReport(layers, ref, ref - steps[lo].drop, config.max_drop,
                           tuple(steps[i] for i in sorted(steps)))
    return built[lo], report, {n: cache[n, b] for n, b in chosen.items()}


def _hull_path(points: Mapping[str, Sequence[tuple[int, float]]]) -> list[dict[str, int]]:
    """Allocations (layer -> candidate index) from every layer at its most expensive candidate down to its cheapest.
    ``points[layer][i] = (cost, noise)``. Each step moves the one layer whose next point on its lower convex hull
    adds the least noise per cost saved (Shoham & Gersho's allocation), so layers jump over dominated candidates."""
    current = {n: max(range(len(p)), key=lambda i: (p[i][0], -p[i][1])) for n, p in points.items()}
    path = [dict(current)]
    while True:
        best, best_key = None, None
        for name, i in current.items():
            c0, n0 = points[name][i]
            for j, (c, nz) in enumerate(points[name]):
                if c >= c0:
                    continue
                key = (max(nz - n0, 0.0) / (c0 - c), -(c0 - c), name)  # least noise per byte; then the larger saving
                if best_key is None or key < best_key:
                    best, best_key = (name, j), key
        if best is None:
            return path
        current[best[0]] = best[1]
        path.append(dict(current))


def _bisect(count: int, drop_at: Callable[[int], float], max_drop: float) -> int:
    """The last index of a path (0 = finest) whose drop stays within ``max_drop`` (0 when even that one misses)."""
    lo, hi = 0, count - 1
    if drop_at(0) <= max_drop + 1e-9:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if drop_at(mid) <= max_drop + 1e-9:
                lo = mid
            else:
                hi = mid - 1
    return lo


def grid_record_bytes(grid: GridTensor) -> int:
    """Bytes the grid costs once encoded: its codebook record (one per-tensor codebook of levels, ``auto`` coding)
    plus its float32 channel scales (stored in the graph)."""
    return len(codebook.to_bytes(codebook.encode(grid.ints), "auto")) + 4 * grid.groups


def _cluster_grid(model: bytes, probe: Any, score: Callable[[bytes], float], config: ClusterConfig,
                  reference_score: float | None) -> tuple[bytes, ClusterReport, dict[str, GridTensor]]:
    """``cluster_onnx`` for ``method="grid"``: per-layer noise and measured encoded bytes for every step, a
    convex-hull path from the finest to the coarsest allocation, bisection on ``score`` of the models that ship."""
    import onnx
    from onnx import numpy_helper

    targets = grid_weights(model, min_params=config.min_params, exclude=config.exclude)
    if not targets:
        raise UnsupportedError("no Conv/Gemm/MatMul float32 weight with at least "
                               f"{config.min_params} elements can take a per-channel grid; lower [cluster] min_params "
                               "or use method = 'kmeans'", reason="nothing to quantize")
    originals = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer
                 if i.name in targets}
    graph = onnx.load_from_string(model).graph
    node_of = {n.input[1]: n for n in graph.node if len(n.input) > 1 and n.input[1] in targets}
    init_names = {i.name for i in graph.initializer}
    biases = {w: n.input[2] for w, n in node_of.items() if len(n.input) > 2 and n.input[2] in init_names}
    bias_values = {b: numpy_helper.to_array(i) for i in graph.initializer if (b := i.name) in set(biases.values())}
    correct = config.bias_correction and bool(biases)
    sess = _probe_session(model, list(targets) + (sorted(set(biases.values())) if correct else []))
    feeds = _feeds(sess, probe, config.probe_samples, set(targets) | set(biases.values()))
    base = _outputs_all(sess, feeds, {})
    power = sum(float(np.mean(b.astype(np.float64) ** 2)) for b in base) or 1.0
    means: dict[str, np.ndarray] = {}
    if correct:
        from .bias_correction import channel_means

        ins = {w: node_of[w].input[0] for w in biases}
        got = channel_means(model, sorted(set(ins.values())), feeds)
        means = {w: got[t] for w, t in ins.items()}

    def corrected(name: str, gt: GridTensor) -> tuple[GridTensor, dict[str, np.ndarray]]:
        """The grid with its bias shift, and the bias to feed the probe (none when not corrected)."""
        if name not in means:
            return gt, {}
        from .bias_correction import expected_output_shift

        shift = expected_output_shift(node_of[name], gt.values.astype(np.float64) - originals[name], means[name])
        if shift is None:
            return gt, {}
        b = bias_values[biases[name]]
        return dataclasses.replace(gt, bias_shift=shift), {biases[name]: (b.astype(np.float64) - shift).astype(np.float32)}

    grids: dict[str, list[GridTensor | None]] = {}
    points: dict[str, list[tuple[int, float]]] = {}
    for name, (_, axis) in targets.items():
        # candidate 0 keeps the weight as it is (a codebook per channel when it has <= 256 values per channel —
        # a small depthwise or stem kernel — or float32): what the most sensitive small layers are worth
        grids[name], points[name] = [None], [(_exact_bytes(originals[name]), 0.0)]
        for step in config.steps:
            gt, bias_feed = corrected(name, grid_array(originals[name], step, axis=axis))
            out = _outputs_all(sess, feeds, {name: gt.values, **bias_feed})
            noise = sum(float(np.mean((o.astype(np.float64) - r) ** 2)) for o, r in zip(out, base)) / power
            grids[name].append(gt)
            points[name].append((grid_record_bytes(gt), noise))
    path = _hull_path(points)
    if config.max_bytes is not None:  # the finest allocation under the cap, and the coarser ones after it
        cost = [sum(points[n][j][0] for n, j in a.items()) for a in path]
        path = path[next((i for i, c in enumerate(cost) if c <= config.max_bytes), len(path) - 1):]
    ref = float(score(model)) if reference_score is None else float(reference_score)
    steps: dict[int, ClusterStep] = {}
    built: dict[int, bytes] = {}

    def pick(i: int) -> dict[str, GridTensor]:
        return {n: grids[n][j] for n, j in path[i].items() if grids[n][j] is not None}

    def drop_at(i: int) -> float:
        if i not in steps:
            built[i] = grid_model(model, pick(i))
            levels = {n: _index_bits(gt.levels) if (gt := grids[n][j]) is not None else 32 for n, j in path[i].items()}
            steps[i] = ClusterStep(8 * sum(points[n][j][0] for n, j in path[i].items()), ref - float(score(built[i])),
                                   levels, {n: grids[n][j].step if grids[n][j] is not None else 0.0
                                            for n, j in path[i].items()})
        return steps[i].drop

    lo = _bisect(len(path), drop_at, config.max_drop)
    chosen = pick(lo)
    final, score_now, ada_report, before = built[lo], ref - steps[lo].drop, None, None
    if config.adaround:
        from .adaround import AdaRoundConfig

        calibration = [dict(probe)] if isinstance(probe, Mapping) else probe  # an array or feed dicts
        chosen, ada_report = adaround_grids(model, chosen, calibration, AdaRoundConfig(
            iterations=config.adaround, samples=config.adaround_samples, seed=config.seed))
        final, before = grid_model(model, chosen), score_now
        score_now = float(score(final))
    layers = []
    for n, j in path[lo].items():
        if grids[n][j] is None:  # kept as it is
            continue
        gt = chosen[n]
        layers.append(LayerCluster(
            name=n, node=targets[n][0], params=int(originals[n].size), bits=_index_bits(gt.levels), centroids=gt.levels,
            groups=gt.groups, zeros=float(np.mean(originals[n] == 0)), weight_sqnr_db=_sqnr_db(originals[n], gt.values),
            output_noise=points[n][j][1], step=gt.step,
            encoded_bytes=points[n][j][0] if gt is grids[n][j] else grid_record_bytes(gt), entropy_bits=gt.entropy_bits()))
    report = ClusterReport(tuple(layers), ref, score_now, config.max_drop, tuple(steps[i] for i in sorted(steps)),
                           adaround=ada_report, score_before_adaround=before)
    return final, report, chosen


def adaround_grids(model: bytes, grids: Mapping[str, GridTensor], calibration: Any,
                   config: Any = None) -> tuple[dict[str, GridTensor], Any]:
    """Learn the rounding of chosen grids with AdaRound (:func:`edgeseal.converters.adaround.adaround_onnx` on the
    grid's per-channel step): each layer's levels go up or down so that its output on ``calibration`` stays
    closest to the float model's, layer by layer in graph order, the earlier layers already rounded; each bias
    absorbs the mean output shift left (bias correction). The steps, hence the channel scales, stay; the levels
    change, so the encoded size moves a little (measure it again).

    ``model``: the float model the grids were made from; ``grids``: :func:`cluster_onnx`'s (``method="grid"``).
    Grids with tail levels (a step too fine for one codebook), and layers AdaRound skips (a shared weight), keep
    their nearest rounding. Returns the new grids (the ones not rounded again unchanged) and the AdaRound report."""
    import onnx
    from onnx import numpy_helper

    from .adaround import AdaRoundConfig, adaround_onnx

    plain = {n: gt for n, gt in grids.items()
             if gt.ints.size and float(np.abs(gt.ints).max()) <= 127 and np.array_equal(gt.ints, np.round(gt.ints))}
    if not plain:
        raise ConfigError("none of the grids can be rounded again (every one has tail levels)")
    steps = {}
    for n, gt in plain.items():
        shape = [1] * gt.ints.ndim
        shape[gt.axis] = -1
        steps[n] = gt.scales.astype(np.float64).reshape(shape)
    rounded, report = adaround_onnx(model, calibration, config or AdaRoundConfig(), grids=steps)
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    graph = onnx.load_from_string(rounded).graph
    after = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    # the bias each rounded layer ends with (AdaRound adds one to a layer that had none); a layer AdaRound
    # skipped (report.skipped) keeps its grid as it was
    nodes = graph.node
    done = {x.node for x in report.layers}
    weight_of = {n.name: n.input[1] for n in nodes if n.name in done}
    bias_of = {n.input[1]: n.input[2] for n in nodes if n.name in done and len(n.input) > 2 and n.input[2]}
    out = dict(grids)
    for n, gt in plain.items():
        if n not in weight_of.values():
            continue
        ints = np.round(after[n].astype(np.float64) / steps[n]).astype(np.float32)
        shift = None
        if n in bias_of:
            b0 = before[bias_of[n]].astype(np.float64) if bias_of[n] in before else 0.0
            shift = b0 - after[bias_of[n]].astype(np.float64)
        values = ints * steps[n].astype(np.float32)  # as grid_array computes them: float32 levels x float32 scales
        out[n] = GridTensor(values.astype(np.float32), ints, gt.scales, gt.axis, gt.step, shift)
    return out, report


def _exact_bytes(w: np.ndarray) -> int:
    """Bytes of a weight left as it is: codebook records per channel when each channel has <= 256 values (as
    ``clustered_tensors`` would store it), else zlib of its float32 bytes."""
    if w.ndim >= 2 and all(len(np.unique(r)) <= codebook.MAX_ENTRIES for r in w.reshape(w.shape[0], -1)):
        return len(codebook.to_bytes(codebook.encode(w, groups=w.shape[0]), "auto"))
    return len(zlib.compress(np.ascontiguousarray(w, np.float32).tobytes(), 9))


def _index_bits(levels: int) -> int:
    return max(1, (levels - 1).bit_length())


def _feeds(sess: Any, probe: Any, limit: int, skip: set[str]) -> list[dict[str, np.ndarray]]:
    names = [i.name for i in sess.get_inputs() if i.name not in skip]
    if isinstance(probe, Mapping):
        return [{k: np.asarray(v) for k, v in probe.items()}]
    if isinstance(probe, (list, tuple)):
        return [{k: np.asarray(v) for k, v in f.items()} for f in probe[:limit]]
    if len(names) != 1:
        raise ConfigError(f"the model has inputs {names}; give the probe as feed dicts name -> array")
    return [{names[0]: np.asarray(probe, np.float32)[:limit]}]


def _outputs_all(sess: Any, feeds: Sequence[Mapping[str, np.ndarray]], weights: Mapping[str, np.ndarray]
                 ) -> list[np.ndarray]:
    """Every output of every probe feed, concatenated per output (float64), with ``weights`` fed in."""
    runs = [sess.run(None, {**f, **weights}) for f in feeds]
    return [np.concatenate([np.asarray(r[i], np.float64).reshape(-1) for r in runs]) for i in range(len(runs[0]))]


# --------------------------------------------------------------------------- centroid fine-tuning (torch)


def finetune_centroids(torch_model: Any, exported: bytes, clusters: Mapping[str, ClusteredTensor],
                       train: tuple[np.ndarray, np.ndarray], config: ClusterConfig, *,
                       show_progress: bool = False, loss_fn: Any = None) -> tuple[Any, tuple[str, ...]]:
    """Train the shared values of the clustered layers (and every other parameter) in ``torch_model``.

    ``exported`` is the float ONNX export the clusters were computed on: a torch weight is matched to
    its initializer when their values are identical (layers whose exported weights differ, e.g. after
    batch-norm folding, are not fine-tuned and stay as clustered in ONNX). Each matched weight becomes
    ``centroids[labels]`` with ``centroids`` the trained parameter, so autograd sums the gradients of the
    weights that share a centroid; zero centroids get no update. Returns the model (weights written back,
    exactly ``centroids[labels]``) and the names of the fine-tuned parameters.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from .train import TrainConfig, fit

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(exported).graph.initializer
             if i.name in clusters}
    matched: dict[str, tuple[Any, str, bool]] = {}
    for pname, p in torch_model.named_parameters():
        arr = p.detach().cpu().numpy()
        for iname, value in inits.items():
            if iname in {m[1] for m in matched.values()}:
                continue
            if arr.shape == value.shape and np.array_equal(arr, value):
                matched[pname] = (p, iname, False)
                break
            if arr.ndim == 2 and arr.T.shape == value.shape and np.array_equal(arr.T, value):
                matched[pname] = (p, iname, True)
                break
    hooks = []
    modules = dict(torch_model.named_modules())
    for pname, (_, iname, transposed) in matched.items():
        mod_name, _, attr = pname.rpartition(".")
        module = modules[mod_name]
        ct = clusters[iname]
        width = max(len(c) for c in ct.centroids)
        table = np.zeros((ct.groups, width), np.float32)
        for g, c in enumerate(ct.centroids):
            table[g, : len(c)] = c
        labels = ct.labels.reshape(ct.groups, -1)
        group_offset = (np.arange(ct.groups)[:, None] * width + labels).reshape(ct.labels.shape)
        if transposed:
            group_offset = group_offset.T
        delattr(module, attr)
        module.register_parameter(attr + "_centroids", torch.nn.Parameter(torch.as_tensor(table)))
        module.register_buffer(attr + "_index", torch.as_tensor(np.ascontiguousarray(group_offset)))
        frozen = torch.as_tensor(table == 0)
        getattr(module, attr + "_centroids").register_hook(lambda g, f=frozen: g.masked_fill(f.to(g.device), 0))

        def rebuild(m: Any, _inputs: Any, attr: str = attr) -> None:
            setattr(m, attr, getattr(m, attr + "_centroids").reshape(-1)[getattr(m, attr + "_index")])

        rebuild(module, None)
        hooks.append((module, attr, module.register_forward_pre_hook(rebuild)))
    tc = TrainConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
                     show_progress=show_progress)
    torch_model = fit(torch_model, *train, tc, loss_fn=loss_fn, description="fine-tune centroids")
    with torch.no_grad():
        for module, attr, handle in hooks:
            handle.remove()
            weight = getattr(module, attr + "_centroids").reshape(-1)[getattr(module, attr + "_index")].detach().clone()
            delattr(module, attr + "_centroids")
            delattr(module, attr + "_index")
            if hasattr(module, attr):
                delattr(module, attr)
            module.register_parameter(attr, torch.nn.Parameter(weight))
    return torch_model.eval(), tuple(sorted(matched))


# --------------------------------------------------------------------------- encoded size


def clustered_tensors(model: bytes, *, min_params: int = 256, per_channel: bool = True) -> dict[str, tuple[np.ndarray, int]]:
    """Initializers a codebook holds: float32 / int8 / uint8 with at most 256 distinct values (per channel when
    ``per_channel`` and the whole tensor does not fit), at least ``min_params`` elements -> (array, groups): one
    codebook or one per channel, whichever gives the smaller entropy-coded record."""
    import onnx
    from onnx import numpy_helper

    out: dict[str, tuple[np.ndarray, int]] = {}
    for init in onnx.load_from_string(model).graph.initializer:
        if math.prod(init.dims) < min_params or init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT8,
                                                                          onnx.TensorProto.UINT8):
            continue
        arr = numpy_helper.to_array(init)
        bits = arr.view(np.uint32 if arr.dtype == np.float32 else np.uint8)
        if len(np.unique(bits)) <= 256:
            candidates = [1] + ([arr.shape[0]] if per_channel and arr.ndim >= 2 else [])
        elif per_channel and arr.ndim >= 2 and all(len(np.unique(r)) <= 256 for r in bits.reshape(arr.shape[0], -1)):
            candidates = [arr.shape[0]]
        else:
            continue
        # per tensor or per channel, whichever record is smaller once entropy-coded (what ships: a per-channel
        # codebook can win on packed bits and lose after coding, its float32 entries being incompressible)
        groups = candidates[0] if len(candidates) == 1 else min(
            candidates, key=lambda g: len(codebook.to_bytes(codebook.encode(arr, groups=g), "auto")))
        out[init.name] = (arr, groups)
    return out


@dataclasses.dataclass(frozen=True)
class EncodedSize:
    """Bytes of a model with its codebook-able weights as ``edgeseal.runtime.codebook`` records.

    ``graph_bytes``: the ONNX model with those initializers marked external (no data), zlib-compressed; ``tensor_bytes``: the
    entropy-coded record set; ``total`` their sum. Not a sealed package (no header, manifest, slots,
    signature, AEAD tags: those add a few hundred bytes plus 16 bytes per MiB).
    """

    onnx_bytes: int
    graph_bytes: int
    tensor_bytes: int
    tensors: int
    packed_bytes: int  # the same records without entropy coding

    @property
    def total(self) -> int:
        return self.graph_bytes + self.tensor_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total": self.total}


def _encoded_graph(model: bytes, found: Mapping[str, tuple[np.ndarray, int]]) -> bytes:
    """``model`` with the ``found`` initializers external at ``codebook.EXTERNAL_LOCATION``, at the offsets of
    ``codebook.blob_layout`` (the buffer the runtime decodes them into)."""
    import onnx

    layout, _ = codebook.blob_layout({n: (a.shape, a.dtype) for n, (a, _) in found.items()})
    proto = onnx.load_from_string(model)
    for init in proto.graph.initializer:
        if init.name in found:
            for field in ("raw_data", "float_data", "int32_data"):
                init.ClearField(field)
            # ONNX's external-data marking: ORT reads the tensor from the in-memory file the runtime builds
            init.data_location = onnx.TensorProto.EXTERNAL
            del init.external_data[:]
            offset, length = layout[init.name]
            for key, value in (("location", codebook.EXTERNAL_LOCATION), ("offset", str(offset)), ("length", str(length))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
    return proto.SerializeToString()


def codebook_model(model: bytes, *, min_params: int = 256, coding: str = "auto") -> bytes:
    """The ``onnx+codebook`` payload of ``model`` (docs/format.md §11): its graph with every codebook-able
    initializer (``clustered_tensors``) external, then those tensors as records. Seal it with
    ``edgeseal.seal(payload, content_format="onnx+codebook")``; ``edgeseal.runtime.load`` decodes it in memory."""
    found = clustered_tensors(model, min_params=min_params)
    if not found:
        raise UnsupportedError("no initializer of this model has at most 256 distinct values (per channel): "
                               "cluster it first (cluster_onnx), or seal it as plain ONNX", reason="nothing to encode")
    records = codebook.encode_tensors({n: a for n, (a, _) in found.items()}, coding=coding,
                                      groups={n: g for n, (_, g) in found.items()})
    return codebook.pack_model(_encoded_graph(model, found), records)


def encoded_size(model: bytes, *, min_params: int = 256) -> tuple[EncodedSize, bytes, bytes]:
    """(sizes, zlib of the graph without the encoded weights, the record set) of ``model``. Decoding the record set
    gives back the removed initializers bit for bit (``edgeseal.runtime.codebook.decode_tensors``), and
    ``edgeseal.runtime.codebook.session`` runs the graph on them with no file written."""
    found = clustered_tensors(model, min_params=min_params)
    graph = zlib.compress(_encoded_graph(model, found), 9)
    records = codebook.encode_tensors({n: a for n, (a, _) in found.items()}, groups={n: g for n, (_, g) in found.items()})
    packed = codebook.encode_tensors({n: a for n, (a, _) in found.items()}, groups={n: g for n, (_, g) in found.items()},
                                     coding="packed")
    return EncodedSize(len(model), len(graph), len(records), len(found), len(packed)), graph, records
