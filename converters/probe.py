"""The converters' graph probes: ONNX Runtime and LiteRT used for something other than running a model.

A model is *run* one way, by the runtime's backend sessions (``converters.infer`` on the host,
``edgeseal.runtime.load`` on the device). The probes here do something else, which the backend
sessions rightly do not offer; they get their raw sessions from the backends too
(``runtime.backends.onnxruntime.raw_session``, ``runtime.backends.litert.graph_reader``):

- :func:`intermediate_session`: read intermediate tensors of an ONNX graph (error localization,
  SmoothQuant ranges, bias correction, activation shapes). The graph gets extra outputs and ORT's
  graph optimizations are off, or fusion would rename or remove the very tensors asked for.
- :func:`override_session`: feed candidate weights per run (clustering's noise probe): the named
  initializers become graph inputs, and only basic optimizations run, so no fusion bakes them in.
- :func:`tflite_graph`: a LiteRT interpreter used to *read* a flatbuffer (ops, tensors, signatures);
  it is never invoked.

``tests/ci/test_one_way_to_run.py`` fails when a direct ``InferenceSession(`` or ``Interpreter(``
appears outside ``runtime/backends`` (benchmarks' plain-library baselines apart, each with its reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["with_outputs", "intermediate_session", "override_session", "tflite_graph"]


def with_outputs(model: bytes, names: Sequence[str]) -> bytes:
    """``model`` with the named tensors added to its graph outputs (those already outputs stay as they are)."""
    import onnx

    proto = onnx.load_from_string(model)
    have = {o.name for o in proto.graph.output}
    for name in names:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    return proto.SerializeToString()


def intermediate_session(model: bytes, names: Sequence[str] = (), *, every_tensor: bool = False) -> Any:
    """An ORT session of ``model`` whose outputs include the tensors ``names`` (or, with ``every_tensor``,
    every node output), graph optimizations off so that each tensor keeps its name. Returns the raw
    ``onnxruntime.InferenceSession``: ``run(names, feed)`` reads any of them."""
    import onnx
    import onnxruntime as ort

    from edgeseal.runtime.backends.onnxruntime import raw_session

    if every_tensor:
        proto = onnx.load_from_string(model)
        names = [o for n in proto.graph.node for o in n.output if o]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor name
    return raw_session(with_outputs(model, names), opts)


def override_session(model: bytes, names: Sequence[str]) -> Any:
    """An ORT session in which the named initializers are also graph inputs, so a run can feed other values."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from edgeseal.runtime.backends.onnxruntime import raw_session

    proto = onnx.load_from_string(model)
    inits = {i.name: i for i in proto.graph.initializer}
    present = {i.name for i in proto.graph.input}
    for name in names:
        if name not in present:
            proto.graph.input.append(helper.make_tensor_value_info(name, inits[name].data_type, list(inits[name].dims)))
    if proto.ir_version < 4:
        proto.ir_version = 4
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # overridable initializers are the point here; ORT warns about them
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return raw_session(proto.SerializeToString(), so)


def tflite_graph(model: bytes) -> Any:
    """A LiteRT interpreter over ``model`` for reading its graph (``_get_ops_details``, tensor details,
    signatures). Tensors are not allocated and nothing is invoked; run models with ``converters.infer``."""
    from edgeseal.runtime.backends.litert import graph_reader

    return graph_reader(model)
