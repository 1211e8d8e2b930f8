"""ONNX weights handed to ONNX Runtime in place (runtime/backends/_onnx_external.py).

The rewritten graph is checked with ``onnx`` itself (an independent protobuf reader): every
external reference points at exactly the bytes of that initializer's ``raw_data`` in the model,
and restoring them gives back the original model. Outputs are compared bit for bit with plain
``onnxruntime.InferenceSession(model_bytes)``; the loader keeps the plaintext while the session
reads from it and wipes it at close.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import ModelClosed, UnsupportedError
from edgeseal.runtime.backends import _onnx_external
from edgeseal.runtime.backends._onnx_external import LOCATION, MIN_BYTES, externalize
from edgeseal.runtime.backends.onnxruntime import IN_PLACE_MIN_BYTES, Session

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

vi = helper.make_tensor_value_info
RNG = np.random.default_rng(7)


def _big_model() -> bytes:
    """A model over 1 MiB with large raw initializers of several dtypes, small and typed-field ones,
    an overridable initializer and a subgraph with its own initializer."""
    n = 70_000
    big = {
        "w_f32": RNG.standard_normal(n).astype(np.float32),
        "w_f16": RNG.standard_normal(n).astype(np.float16),
        "w_f64": RNG.standard_normal(n // 2).astype(np.float64),
        "w_i8": RNG.integers(-128, 128, n, dtype=np.int8),
        "w_u8": RNG.integers(0, 256, n, dtype=np.uint8),
        "w_i32": RNG.integers(-2**31, 2**31, n // 4, dtype=np.int32),
        "w_i64": RNG.integers(-2**40, 2**40, n // 8, dtype=np.int64),
        "w_bool": RNG.integers(0, 2, 2 * MIN_BYTES, dtype=np.int8).astype(bool),
        "table": RNG.standard_normal((1000, 256)).astype(np.float32),  # a Gather table: 1 MB
    }
    inits = [numpy_helper.from_array(v, k) for k, v in big.items()]
    inits.append(numpy_helper.from_array(np.float32([0.5, -2.0]), "small"))  # stays inline
    typed = helper.make_tensor("typed", TP.FLOAT, [400], RNG.standard_normal(400).astype(np.float32).tolist())
    inits.append(typed)  # float_data, not raw_data: stays inline
    inits.append(numpy_helper.from_array(RNG.standard_normal(n).astype(np.float32), "bias"))  # overridable
    sub_init = numpy_helper.from_array(RNG.standard_normal(n).astype(np.float32), "sub_w")
    then = helper.make_graph([helper.make_node("Add", ["x", "sub_w"], ["t"])], "then", [],
                             [vi("t", TP.FLOAT, [n])], initializer=[sub_init])
    other = helper.make_graph([helper.make_node("Sub", ["x", "sub_w2"], ["t2"])], "else", [],
                              [vi("t2", TP.FLOAT, [n])],
                              initializer=[numpy_helper.from_array(np.ones(n, np.float32), "sub_w2")])
    nodes = [
        helper.make_node("Add", ["x", "w_f32"], ["a"]),
        helper.make_node("Add", ["a", "bias"], ["y_f32"]),
        helper.make_node("Cast", ["w_f16"], ["y_f16"], to=TP.FLOAT16),
        helper.make_node("Identity", ["w_f64"], ["y_f64"]),
        helper.make_node("Mul", ["w_i8", "w_i8"], ["y_i8"]),
        helper.make_node("Identity", ["w_u8"], ["y_u8"]),
        helper.make_node("Identity", ["w_i32"], ["y_i32"]),
        helper.make_node("Identity", ["w_i64"], ["y_i64"]),
        helper.make_node("Not", ["w_bool"], ["y_bool"]),
        helper.make_node("Gather", ["table", "ids"], ["y_gather"], axis=0),
        helper.make_node("Mul", ["small", "small"], ["y_small"]),
        helper.make_node("Identity", ["typed"], ["y_typed"]),
        helper.make_node("If", ["flag"], ["y_if"], then_branch=then, else_branch=other),
    ]
    outs = [vi(name, t, None) for name, t in [
        ("y_f32", TP.FLOAT), ("y_f16", TP.FLOAT16), ("y_f64", TP.DOUBLE), ("y_i8", TP.INT8), ("y_u8", TP.UINT8),
        ("y_i32", TP.INT32), ("y_i64", TP.INT64), ("y_bool", TP.BOOL), ("y_gather", TP.FLOAT),
        ("y_small", TP.FLOAT), ("y_typed", TP.FLOAT), ("y_if", TP.FLOAT)]]
    inputs = [vi("x", TP.FLOAT, [n]), vi("ids", TP.INT64, [None]), vi("flag", TP.BOOL, []),
              vi("bias", TP.FLOAT, [n])]  # an initializer that is also an input: a feed may override it
    graph = helper.make_graph(nodes, "g", inputs, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    data = model.SerializeToString()
    assert len(data) >= IN_PLACE_MIN_BYTES
    return data


@pytest.fixture(scope="module")
def big() -> bytes:
    return _big_model()


def _feeds(flag: bool) -> dict:
    return {"x": RNG.standard_normal(70_000).astype(np.float32), "ids": np.int64([3, 999, 0, 3]),
            "flag": np.array(flag)}


def _plain(model: bytes, feeds: dict) -> dict:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        assert got[name].tobytes() == want[name].tobytes(), name


def test_every_external_reference_points_at_that_initializers_raw_data(big):
    graph, moved = externalize(big)
    original = onnx.load_from_string(big)
    rewritten = onnx.load_from_string(graph)
    before = {t.name: t for t in original.graph.initializer}
    external = {}
    for tensor in rewritten.graph.initializer:
        if tensor.data_location == TP.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            assert info["location"] == LOCATION
            offset, length = int(info["offset"]), int(info["length"])
            assert big[offset:offset + length] == before[tensor.name].raw_data, tensor.name
            external[tensor.name] = length
    # exactly the top-level raw initializers of MIN_BYTES or more moved; small, typed-field and subgraph ones did not
    assert set(external) == {t.name for t in original.graph.initializer if len(t.raw_data) >= MIN_BYTES}
    assert {"small", "typed"}.isdisjoint(external) and "bias" in external
    assert moved == sum(external.values())
    assert len(graph) < len(big) - moved + 10_000
    # restoring the bytes gives back the original model, field for field
    for tensor in rewritten.graph.initializer:
        if tensor.name in external:
            tensor.raw_data = before[tensor.name].raw_data
            del tensor.external_data[:]
            tensor.ClearField("data_location")
    assert rewritten == original


def test_session_in_place_answers_bit_for_bit_like_plain_onnxruntime(big):
    session = Session(big)
    assert session.holds_buffer
    for flag in (True, False):
        feeds = _feeds(flag)
        _assert_same(session.run(feeds), _plain(big, feeds))
    # the overridable initializer is still a feed, and overriding it works in place too
    feeds = _feeds(True)
    feeds["bias"] = np.full(70_000, 3.0, np.float32)
    _assert_same(session.run(feeds), _plain(big, feeds))
    assert "bias" in [s.name for s in session.inputs if s.optional]


def test_small_models_take_the_ordinary_path(big):
    small = Session(onnx.helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [vi("x", TP.FLOAT, [2])],
                          [vi("y", TP.FLOAT, [2])]), opset_imports=[helper.make_opsetid("", 21)],
        ir_version=10).SerializeToString())
    assert not small.holds_buffer


def test_bytes_it_cannot_split_are_left_to_onnxruntime(big):
    assert externalize(b"\xff\xff\xff") is None
    assert externalize(big[:-7]) is None  # truncated
    assert externalize(big + b"\x3a\x00") is None  # a second graph field (protobuf would merge the two)
    graph, _ = externalize(big)
    assert externalize(graph) is None  # already external: nothing more to move


def test_a_model_that_names_the_in_memory_location_itself_is_not_given_its_own_memory(big):
    """An external initializer the model brings along (here in a subgraph, which externalize does not rewrite)
    must not get to read the model's memory at offsets of its choosing."""
    model = onnx.load_from_string(big)
    branch = next(a for n in model.graph.node if n.op_type == "If" for a in n.attribute if a.name == "then_branch")
    tensor = branch.g.initializer[0]
    onnx.external_data_helper.set_external_data(tensor, location=LOCATION, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = TP.EXTERNAL
    hostile = model.SerializeToString()
    assert externalize(hostile) is None
    assert len(hostile) >= IN_PLACE_MIN_BYTES
    with pytest.raises(UnsupportedError, match="edgeseal-in-memory-weights"):  # ORT looks for a file of that name
        Session(hostile)


def test_sealed_model_keeps_the_plaintext_while_onnxruntime_reads_it_and_wipes_it_at_close(big, publisher, device):
    package = edgeseal.seal(big, publisher=publisher, devices=[device])
    model = edgeseal.load(package, key=device, trusted=[publisher])
    plain = model._plain
    assert plain is not None and bytes(plain.view) == big
    feeds = _feeds(True)
    _assert_same(model.run(feeds), _plain(big, feeds))
    model.close()
    assert not any(plain.view)  # wiped after ORT let go of it
    with pytest.raises(ModelClosed):
        model.run(feeds)


def test_small_initializers_moved_too_still_answer_alike(big, monkeypatch):
    _, moved_default = externalize(big)
    monkeypatch.setattr(_onnx_external, "MIN_BYTES", 1)
    _, moved = externalize(big)
    assert moved == moved_default + 8  # "small": two float32
    session = Session(big)
    assert session.holds_buffer
    feeds = _feeds(False)
    _assert_same(session.run(feeds), _plain(big, feeds))


def test_weights_in_place_false_copies_and_wipes_at_once(big, publisher, device, monkeypatch):
    from edgeseal.runtime import _memory

    package = edgeseal.seal(big, publisher=publisher, devices=[device])
    wiped, real_wipe = [], _memory.PlainBuffer.wipe

    def recording_wipe(self):
        real_wipe(self)
        wiped.append(len(self.view) == len(big) and not any(self.view))

    monkeypatch.setattr(_memory.PlainBuffer, "wipe", recording_wipe)
    model = edgeseal.load(package, key=device, trusted=[publisher], weights_in_place=False)
    assert wiped == [True]  # the plaintext was zeroed before load returned
    assert model._plain is None and not model._session.holds_buffer
    feeds = _feeds(False)
    _assert_same(model.run(feeds), _plain(big, feeds))
    model.close()
