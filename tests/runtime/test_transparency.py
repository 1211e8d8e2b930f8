"""Transparency: what plain ONNX Runtime loads and runs, edgeseal seals, loads and runs bit for bit the same.

Every model is built with ``onnx.helper``, sealed, loaded and run; its outputs are compared with a
plain ``onnxruntime.InferenceSession`` over the same bytes and the same feeds: same Python types
(arrays, lists for sequences, dicts for maps, None), same dtypes, shapes and bytes (NaN payloads
and -0.0 included), same strings.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import InvalidInput, UnsupportedError
from edgeseal.runtime.format import Manifest
from edgeseal.runtime.tensors import TensorSpec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

vi = helper.make_tensor_value_info


def _model(nodes, inputs, outputs, initializers=(), opset=21, ml=False) -> bytes:
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml else [])
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model.SerializeToString()


def _identity(elem: int, shape) -> bytes:
    return _model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", elem, shape)], [vi("y", elem, shape)])


def _plain(model: bytes, feeds: dict) -> dict:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def assert_identical(got, want, where="outputs"):
    """Same Python type, and for arrays the same dtype, shape and bytes (object arrays: same items)."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{got.shape}"
        if want.dtype == object:
            assert [type(v) for v in got.flat] == [type(v) for v in want.flat], where
            assert got.tolist() == want.tolist(), where
        else:
            assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), where
    elif isinstance(want, dict):
        assert list(got) == list(want) and [type(k) for k in got] == [type(k) for k in want], where
        for k in want:
            assert_identical(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_identical(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), where
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def seal_load(publisher, device):
    """model bytes -> (manifest as a reader parses it, loaded SealedModel)."""
    opened = []

    def go(model: bytes):
        package = edgeseal.seal(model, publisher=publisher, devices=[device])
        manifest = edgeseal.inspect(package).manifest
        assert Manifest.from_bytes(manifest.to_bytes()) == manifest
        for spec in manifest.inputs + manifest.outputs:
            assert TensorSpec.from_dict(spec.to_dict()) == spec
        sealed = edgeseal.load(package, key=device, trusted=[publisher])
        opened.append(sealed)
        return manifest, sealed

    yield go
    for sealed in opened:
        sealed.close()


def _same_as_plain(seal_load, model: bytes, *feed_sets: dict):
    manifest, sealed = seal_load(model)
    for feeds in feed_sets:
        assert_identical(sealed.run(feeds), _plain(model, feeds))
    return manifest, sealed


def _values(dtype: str) -> np.ndarray:
    """2x3 values of ``dtype`` that exercise its edges: extremes, NaN with a payload, -0.0, inf, subnormals."""
    if dtype == "bool":
        return np.array([[True, False, True], [False, False, True]])
    if dtype == "string":
        return np.array([["", "a", "héllo wörld"], ["日本語", "tab\there", "emoji 🦀"]], dtype=object)
    t = np.dtype(dtype)
    if t.kind in "iu":
        info = np.iinfo(t)
        return np.array([[info.min, info.max, 0], [1, info.max // 3, info.min // 2 + 1]], dtype=t)
    info = np.finfo(t)
    values = np.array([-0.0, np.inf, -np.inf, info.smallest_subnormal, info.max, np.nan], t)
    values.view(f"u{t.itemsize}")[5] |= 1  # a NaN with a non-default payload
    return values.reshape(2, 3)


ONNX_TYPES = {
    "bool": TP.BOOL, "int8": TP.INT8, "uint8": TP.UINT8, "int16": TP.INT16, "uint16": TP.UINT16,
    "int32": TP.INT32, "uint32": TP.UINT32, "int64": TP.INT64, "uint64": TP.UINT64,
    "float16": TP.FLOAT16, "float32": TP.FLOAT, "float64": TP.DOUBLE, "string": TP.STRING,
}


@pytest.mark.parametrize("dtype", sorted(ONNX_TYPES))
def test_every_element_type_passes_through(seal_load, dtype):
    model = _identity(ONNX_TYPES[dtype], [2, 3])
    manifest, sealed = _same_as_plain(seal_load, model, {"x": _values(dtype)})
    assert [s.to_dict() for s in manifest.inputs] == [{"name": "x", "dtype": dtype, "shape": [2, 3]}]
    assert [s.to_dict() for s in manifest.outputs] == [{"name": "y", "dtype": dtype, "shape": [2, 3]}]
    assert_identical(sealed.run({"x": _values(dtype)})["y"], _values(dtype))  # and it is the identity


@pytest.mark.parametrize("to", ["float16", "float64", "int8", "uint16", "uint32", "uint64", "bool", "string"])
def test_cast_outputs_match_plain_onnxruntime(seal_load, to):
    x = np.array([[0.0, -0.0, 1.5, 2.5], [100.25, 7.0, 1e-3, 65504.0]], np.float32)
    if to in ("int8", "uint16", "uint32", "uint64"):
        x = np.abs(np.trunc(x)) % 100  # in range for every integer type: a defined cast
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=ONNX_TYPES[to])],
                   [vi("x", TP.FLOAT, [2, 4])], [vi("y", ONNX_TYPES[to], [2, 4])])
    _same_as_plain(seal_load, model, {"x": x})


def test_scalars_zero_size_and_symbolic_dims(seal_load):
    model = _model(
        [helper.make_node("Identity", [n], [n + "_out"]) for n in ("s", "z", "b")],
        [vi("s", TP.FLOAT, []), vi("z", TP.INT32, [0, 3]), vi("b", TP.INT64, ["batch", None, 2])],
        [vi("s_out", TP.FLOAT, []), vi("z_out", TP.INT32, [0, 3]), vi("b_out", TP.INT64, ["batch", None, 2])],
    )
    feeds = [
        {"s": np.array(2.5, np.float32), "z": np.zeros((0, 3), np.int32), "b": np.arange(6).reshape(1, 3, 2)},
        {"s": np.array(np.nan, np.float32), "z": np.zeros((0, 3), np.int32), "b": np.zeros((0, 0, 2), np.int64)},
    ]
    manifest, sealed = _same_as_plain(seal_load, model, *feeds)
    assert {s.name: s.to_dict()["shape"] for s in manifest.inputs} == {"s": [], "z": [0, 3], "b": [None, None, 2]}
    with pytest.raises(InvalidInput, match=r"input 's' has shape \(1,\), the model expects s: float32\[\]"):
        sealed.run({**feeds[0], "s": np.array([2.5], np.float32)})
    with pytest.raises(InvalidInput, match=r"input 'z' has shape \(1, 3\), the model expects z: int32\[0, 3\]"):
        sealed.run({**feeds[0], "z": np.zeros((1, 3), np.int32)})
    with pytest.raises(InvalidInput, match=r"input 'b' has shape \(3, 2\), the model expects b: int64\[\?, \?, 2\]"):
        sealed.run({**feeds[0], "b": np.zeros((3, 2), np.int64)})


def test_unknown_rank_takes_every_rank(seal_load):
    model = _model([helper.make_node("Neg", ["x"], ["y"])], [vi("x", TP.FLOAT, None)], [vi("y", TP.FLOAT, None)])
    feeds = [{"x": np.arange(np.prod(shape), dtype=np.float32).reshape(shape)}
             for shape in [(), (3,), (2, 3), (1, 2, 0), (2, 1, 2, 1, 2)]]
    manifest, sealed = _same_as_plain(seal_load, model, *feeds)
    assert manifest.inputs[0].to_dict() == {"name": "x", "dtype": "float32", "shape": None}
    assert manifest.outputs[0].shape is None and "x: float32[*]" in repr(sealed)


def test_overridable_initializer_is_an_optional_feed(seal_load):
    model = _model([helper.make_node("Add", ["x", "bias"], ["y"])],
                   [vi("x", TP.FLOAT, [2]), vi("bias", TP.FLOAT, [2])], [vi("y", TP.FLOAT, [2])],
                   initializers=[helper.make_tensor("bias", TP.FLOAT, [2], [10.0, 20.0])])
    x = np.array([1.0, 2.0], np.float32)
    manifest, sealed = _same_as_plain(seal_load, model, {"x": x}, {"x": x, "bias": np.array([-1.0, 0.5], np.float32)})
    assert manifest.inputs[1].to_dict() == {"name": "bias", "dtype": "float32", "shape": [2], "optional": True}
    assert sealed.run([x])["y"].tolist() == [11.0, 22.0]  # positional: required inputs first
    assert sealed.run({"x": x, "bias": None})["y"].tolist() == [11.0, 22.0]  # None = not fed
    with pytest.raises(InvalidInput, match=r"input 'bias' has dtype float64, the model expects float32"):
        sealed.run({"x": x, "bias": np.zeros(2)})


def test_onnx_optional_inputs_and_outputs(seal_load):
    elem = helper.make_tensor_type_proto(TP.FLOAT, [2])
    model = _model(
        [helper.make_node("OptionalHasElement", ["o"], ["has"]), helper.make_node("Optional", ["x"], ["some"]),
         helper.make_node("Optional", [], ["none"], type=elem)],
        [helper.make_value_info("o", helper.make_optional_type_proto(elem)), vi("x", TP.FLOAT, [2])],
        [vi("has", TP.BOOL, []), helper.make_value_info("some", helper.make_optional_type_proto(elem)),
         helper.make_value_info("none", helper.make_optional_type_proto(elem))],
    )
    x = np.array([3.0, 4.0], np.float32)
    manifest, sealed = _same_as_plain(seal_load, model, {"x": x}, {"x": x, "o": None}, {"x": x, "o": x})
    assert manifest.inputs[0].to_dict() == {"name": "o", "kind": "optional", "optional": True,
                                            "elem": {"dtype": "float32", "shape": [2]}}
    out = sealed.run({"x": x, "o": x})
    assert out["has"].item() is True and out["none"] is None and out["some"].tolist() == [3.0, 4.0]
    assert sealed.run({"x": x})["has"].item() is False
    with pytest.raises(InvalidInput, match=r"input 'o' has shape \(3,\), the model expects o: float32\[2\]"):
        sealed.run({"x": x, "o": np.zeros(3, np.float32)})


def test_sequences_in_and_out(seal_load):
    seq = helper.make_tensor_sequence_value_info
    model = _model(
        [helper.make_node("SequenceConstruct", ["a", "b"], ["pair"]),
         helper.make_node("SequenceAt", ["s", "i"], ["at"]),
         helper.make_node("SplitToSequence", ["a"], ["parts"], keepdims=0),
         helper.make_node("Optional", ["pair"], ["maybe_pair"])],
        [vi("a", TP.FLOAT, [3]), vi("b", TP.FLOAT, [None]), seq("s", TP.INT64, None), vi("i", TP.INT64, [])],
        [seq("pair", TP.FLOAT, None), vi("at", TP.INT64, None), seq("parts", TP.FLOAT, None),
         helper.make_value_info("maybe_pair", helper.make_optional_type_proto(
             helper.make_sequence_type_proto(helper.make_tensor_type_proto(TP.FLOAT, None))))],
    )
    feeds = {"a": np.array([1.0, np.nan, -0.0], np.float32), "b": np.zeros(0, np.float32),
             "s": [np.arange(4), np.array([[7, 8]])], "i": np.array(1)}
    manifest, sealed = _same_as_plain(seal_load, model, feeds)
    assert manifest.inputs[2].to_dict() == {"name": "s", "kind": "sequence", "elem": {"dtype": "int64", "shape": None}}
    assert manifest.outputs[0].to_dict() == {"name": "pair", "kind": "sequence",
                                             "elem": {"dtype": "float32", "shape": None}}
    assert manifest.outputs[3].describe() == "maybe_pair: optional<sequence<float32[*]>>"
    out = sealed.run(feeds)
    assert isinstance(out["pair"], list) and len(out["parts"]) == 3 and out["at"].tolist() == [[7, 8]]
    assert isinstance(out["maybe_pair"], list) and len(out["maybe_pair"]) == 2


def test_maps_in_and_out(seal_load):
    float_scalar = helper.make_tensor_type_proto(TP.FLOAT, [])

    def seq_of_map(key):
        return helper.make_sequence_type_proto(helper.make_map_type_proto(key, float_scalar))

    zipmap_int = _model(
        [helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[10, 20])],
        [vi("x", TP.FLOAT, [None, 2])],
        [helper.make_value_info("z", seq_of_map(TP.INT64))],
        ml=True)
    zipmap_str = _model(
        [helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_strings=["cat", "dög"])],
        [vi("x", TP.FLOAT, [None, 2])],
        [helper.make_value_info("z", seq_of_map(TP.STRING))],
        ml=True)
    x = np.array([[0.25, 0.75], [np.nan, -0.0], [1e-40, 3.4e38]], np.float32)
    manifest, sealed = _same_as_plain(seal_load, zipmap_int, {"x": x})
    assert manifest.outputs[0].to_dict() == {"name": "z", "kind": "sequence", "elem": {
        "kind": "map", "key": "int64", "elem": {"dtype": "float32", "shape": None}}}
    assert sealed.run({"x": x})["z"][0] == {10: 0.25, 20: 0.75}
    _same_as_plain(seal_load, zipmap_str, {"x": x})

    vectorizer = _model(
        [helper.make_node("DictVectorizer", ["m"], ["y"], domain="ai.onnx.ml", string_vocabulary=["a", "b", "c"])],
        [helper.make_value_info("m", helper.make_map_type_proto(TP.STRING, float_scalar))], [vi("y", TP.FLOAT, None)],
        ml=True)
    manifest, _ = _same_as_plain(seal_load, vectorizer, {"m": {"a": 1.5, "c": -3.0}}, {"m": {"b": -0.0, "zz": 2.0}})
    assert manifest.inputs[0].describe() == "m: map<string, float32[*]>"


def test_lists_and_python_scalars_are_converted_like_onnxruntime(seal_load):
    model = _model([helper.make_node("Identity", [n], [n + "_out"]) for n in ("f", "i", "t", "k")],
                   [vi("f", TP.FLOAT, [None, 2]), vi("i", TP.INT64, [2]), vi("t", TP.STRING, [None]),
                    vi("k", TP.BOOL, [2])],
                   [vi("f_out", TP.FLOAT, [None, 2]), vi("i_out", TP.INT64, [2]), vi("t_out", TP.STRING, [None]),
                    vi("k_out", TP.BOOL, [2])])
    feeds = {"f": [[1, 2.5], [0.1, -0.0]], "i": [1.9, True], "t": ["a", "ü"], "k": [1, 0]}
    _, sealed = _same_as_plain(seal_load, model, feeds)  # ORT converts lists to the input's dtype
    out = sealed.run(feeds)
    assert out["f_out"].dtype == np.float32 and out["i_out"].tolist() == [1, 1] and out["k_out"].dtype == bool
    with pytest.raises(InvalidInput, match=r"input 'f': cannot convert the list to float32"):
        sealed.run({**feeds, "f": [["a", "b"]]})
    with pytest.raises(InvalidInput, match=r"input 'i': cannot convert the list to int64"):
        sealed.run({**feeds, "i": [2**70, 1]})

    scalar = _model([helper.make_node("Identity", ["s"], ["y"])], [vi("s", TP.FLOAT, [])], [vi("y", TP.FLOAT, [])])
    _, sealed = seal_load(scalar)
    # ORT refuses Python and NumPy scalars; edgeseal takes them as the 0-d array ORT would take
    assert_identical(sealed.run({"s": 2.5}), _plain(scalar, {"s": np.array(2.5, np.float32)}))
    assert_identical(sealed.run({"s": np.float32(2.5)}), _plain(scalar, {"s": np.array(2.5, np.float32)}))


def test_non_native_byte_order_is_converted_not_misread(seal_load):
    model = _identity(TP.FLOAT, [None, 3])
    native = np.array([[1.5, -2.0, np.inf], [0.1, 3.0, -0.0]], np.float32)
    swapped = native.astype(native.dtype.newbyteorder("S"))
    assert swapped.tobytes() != native.tobytes() and np.array_equal(swapped, native)
    _, sealed = seal_load(model)
    assert_identical(sealed.run({"x": swapped}), _plain(model, {"x": native}))
    # plain ONNX Runtime (1.32) reads the swapped bytes as native order: the README says so
    assert _plain(model, {"x": swapped})["y"].tobytes() == swapped.tobytes() != native.tobytes()
    fortran = np.asfortranarray(swapped)  # and not C-contiguous either
    assert_identical(sealed.run({"x": fortran}), _plain(model, {"x": native}))


def test_types_numpy_lacks_seal_and_fail_as_in_plain_onnxruntime(seal_load):
    """bfloat16 and float8 models load in ORT 1.32, but its Python API cannot pass those tensors."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = _identity(TP.BFLOAT16, [2])
    manifest, sealed = seal_load(bf16)
    assert manifest.inputs[0].to_dict() == {"name": "x", "dtype": "bfloat16", "shape": [2]}
    x = np.array([1.0, 2.0], ml_dtypes.bfloat16)
    with pytest.raises(Exception, match="can't be converted to MLDataType"):
        _plain(bf16, {"x": x})
    with pytest.raises(UnsupportedError, match=r"cannot pass \['x', 'y'\].*can't be converted to MLDataType"):
        sealed.run({"x": x})
    with pytest.raises(InvalidInput, match=r"input 'x' has dtype uint16, the model expects bfloat16"):
        sealed.run({"x": np.zeros(2, np.uint16)})
    with pytest.raises(Exception, match="No corresponding Numpy type for Tensor Type. bfloat16"):
        _plain(bf16, {"x": [1.0, 2.0]})  # a list goes to the backend unchanged, which fails the same way
    with pytest.raises(UnsupportedError, match=r"cannot pass \['x', 'y'\].*No corresponding Numpy type"):
        sealed.run({"x": [1.0, 2.0]})

    # float8_e4m3fn outputs come back as their uint8 bit patterns, in ORT and in edgeseal alike
    fp8 = _model([helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT8E4M3FN)],
                 [vi("x", TP.FLOAT, [3])], [vi("y", TP.FLOAT8E4M3FN, [3])])
    manifest, sealed = _same_as_plain(seal_load, fp8, {"x": np.array([1.5, -2.0, 448.0], np.float32)})
    assert manifest.outputs[0].dtype == "float8_e4m3fn"
    assert sealed.run({"x": np.array([1.5], np.float32).repeat(3)})["y"].dtype == np.uint8

    # other outputs NumPy has no type for: sealed with their dtype, refused at run as ORT refuses them
    for onnx_type, dtype in [(TP.FLOAT8E5M2, "float8_e5m2"), (TP.INT4, "int4"), (TP.UINT4, "uint4")]:
        cast = _model([helper.make_node("Cast", ["x"], ["y"], to=onnx_type)],
                      [vi("x", TP.FLOAT, [3])], [vi("y", onnx_type, [3])])
        x = np.array([1.0, -2.0, 3.0], np.float32)
        with pytest.raises(Exception, match="No corresponding Numpy type"):
            _plain(cast, {"x": x})
        manifest, sealed = seal_load(cast)
        assert manifest.outputs[0].to_dict() == {"name": "y", "dtype": dtype, "shape": [3]}
        with pytest.raises(UnsupportedError, match=r"cannot pass \['y'\].*No corresponding Numpy type"):
            sealed.run({"x": x})


@pytest.mark.parametrize("onnx_type", [TP.COMPLEX64, TP.COMPLEX128])
def test_complex_models_onnxruntime_cannot_load_are_refused_at_seal(publisher, device, onnx_type):
    model = _identity(onnx_type, [2])
    with pytest.raises(Exception, match="is not currently registered or supported"):
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with pytest.raises(UnsupportedError, match="onnxruntime .* cannot load this model.*not currently registered"):
        edgeseal.seal(model, publisher=publisher, devices=[device])


def test_wrong_feeds_name_the_input_what_it_expects_and_what_it_got(seal_load):
    model = _model([helper.make_node("Identity", [n], [n + "_out"]) for n in ("x", "t")],
                   [vi("x", TP.UINT16, [None, 4]), vi("t", TP.STRING, [1])],
                   [vi("x_out", TP.UINT16, [None, 4]), vi("t_out", TP.STRING, [1])])
    _, sealed = seal_load(model)
    t = np.array(["ok"])
    with pytest.raises(InvalidInput, match=r"input 'x' has dtype int16, the model expects uint16 "
                                           r"\(convert with \.astype\(np\.uint16\)\)"):
        sealed.run({"x": np.zeros((1, 4), np.int16), "t": t})
    with pytest.raises(InvalidInput, match=r"input 'x' has shape \(4,\), the model expects x: uint16\[\?, 4\]"):
        sealed.run({"x": np.zeros(4, np.uint16), "t": t})
    with pytest.raises(InvalidInput, match=r"input 't' has dtype \|S2, onnxruntime takes string tensors as numpy "
                                           r"str or object arrays: decode bytes, e\.g\. np\.char\.decode"):
        sealed.run({"x": np.zeros((1, 4), np.uint16), "t": np.array([b"ok"])})
    with pytest.raises(InvalidInput, match=r"input 't' has dtype float32, the model expects string "
                                           r"\(a numpy str, bytes or object array\)"):
        sealed.run({"x": np.zeros((1, 4), np.uint16), "t": np.zeros(1, np.float32)})
    with pytest.raises(InvalidInput, match=r"missing \['t'\], unknown \['z'\]\); "
                                           r"the model takes x: uint16\[\?, 4\]; t: string\[1\]"):
        sealed.run({"x": np.zeros((1, 4), np.uint16), "z": t})
    with pytest.raises(InvalidInput, match=r"model takes 2 inputs in the order \['x', 't'\], got 1 values"):
        sealed.run([np.zeros((1, 4), np.uint16)])


def test_older_manifest_without_optional_inputs_still_loads(publisher, device):
    """A v1 writer before optional feeds listed only the required inputs; load takes the model's own specs."""
    model = _model([helper.make_node("Add", ["x", "bias"], ["y"])],
                   [vi("x", TP.FLOAT, None), vi("bias", TP.FLOAT, [1])], [vi("y", TP.FLOAT, None)],
                   initializers=[helper.make_tensor("bias", TP.FLOAT, [1], [1.0])])
    x = np.ones((2, 2), np.float32)
    old_inputs = (TensorSpec(name="x", dtype="float32", shape=()),)  # what the old writer recorded
    package = _reseal(model, publisher, device, inputs=old_inputs)
    with edgeseal.load(package, key=device, trusted=[publisher]) as sealed:
        feeds = {"x": x, "bias": np.zeros(1, np.float32)}
        assert_identical(sealed.run(feeds), _plain(model, feeds))
        assert [s.describe() for s in sealed.inputs] == ["x: float32[*]", "bias: float32[1] (optional)"]
    wrong = (TensorSpec(name="x", dtype="float64", shape=None),)
    with pytest.raises(UnsupportedError, match=r"declares inputs \['x: float64\[\*\]'\] but the model takes "
                                               r"\['x: float32\[\*\]', 'bias: float32\[1\] \(optional\)'\]"):
        edgeseal.load(_reseal(model, publisher, device, inputs=wrong), key=device, trusted=[publisher])


def _reseal(model: bytes, publisher, device, inputs) -> bytes:
    """Seal ``model`` with a manifest whose inputs are ``inputs`` (as an older writer would have)."""
    from edgeseal.runtime import format as fmt

    package = edgeseal.seal(model, publisher=publisher, devices=[device])
    manifest = edgeseal.inspect(package).manifest
    edited = dataclasses.replace(manifest, inputs=inputs, payload=None)
    return fmt.write_package(model, edited, [fmt.DeviceRecipient(_raw_public(device))], publisher)


def _raw_public(device) -> bytes:
    from edgeseal.runtime import crypto

    return crypto.raw_public(device.public_key())


def test_litert_dtypes_and_scalars_match_plain_litert(seal_load):
    """LiteRT: the same for the element types litert-torch emits (float32/16, int32/16, bool) and a scalar."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    class Net(torch.nn.Module):
        def forward(self, x, i, s, h, k):
            return x * 2, i + 1, s - 3, h * h, torch.logical_not(k), i.sum()

    examples = (torch.zeros(2, 3), torch.zeros(4, dtype=torch.int32), torch.zeros(3, dtype=torch.int16),
                torch.zeros(3, dtype=torch.float16), torch.zeros(3, dtype=torch.bool))
    model = bytes(litert_torch.convert(Net().eval(), examples).model_content())
    feeds = [np.array([[1.5, -0.0, np.inf], [np.nan, 3e38, -1e-30]], np.float32),
             np.array([2**31 - 2, -(2**31), 0, 7], np.int32), np.array([-32768, 5, 32767], np.int16),
             np.array([65504, -0.0, 6e-8], np.float16), np.array([True, False, True])]

    plain = Interpreter(model_content=model)
    plain.allocate_tensors()
    names = [d["name"] for d in plain.get_input_details()]
    for detail, value in zip(plain.get_input_details(), feeds):
        plain.set_tensor(detail["index"], value)
    plain.invoke()
    want = {d["name"]: plain.get_tensor(d["index"]) for d in plain.get_output_details()}

    manifest, sealed = seal_load(model)
    assert [s.dtype for s in manifest.inputs] == ["float32", "int32", "int16", "float16", "bool"]
    assert manifest.outputs[-1].shape == ()
    assert_identical(sealed.run(dict(zip(names, feeds))), want)
    swapped = [f.astype(f.dtype.newbyteorder("S")) for f in feeds]  # other byte order: converted, same values
    assert_identical(sealed.run(dict(zip(names, swapped))), want)
    assert_identical(sealed.run(dict(zip(names, [f.tolist() for f in feeds]))), want)  # lists, as ORT takes them
    with pytest.raises(InvalidInput, match=rf"input '{names[1]}' has dtype int64, the model expects int32"):
        sealed.run(dict(zip(names, [feeds[0], feeds[1].astype(np.int64), *feeds[2:]])))


def test_sparse_tensors_are_refused_by_name(publisher, device):
    """ORT loads a model with a sparse input, but ``InferenceSession.run`` takes no NumPy array for it."""
    model = helper.make_model(
        helper.make_graph([helper.make_node("SparseToDenseMatMul", ["a", "b"], ["y"], domain="com.microsoft")], "g",
                          [helper.make_sparse_tensor_value_info("a", TP.FLOAT, [2, 2]), vi("b", TP.FLOAT, [2, 2])],
                          [vi("y", TP.FLOAT, [2, 2])]),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    data = model.SerializeToString()
    plain = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="expected to be of type"):
        plain.run(None, {"a": np.eye(2, dtype=np.float32), "b": np.eye(2, dtype=np.float32)})
    with pytest.raises(UnsupportedError, match=r"input 'a' has type sparse_tensor\(float\), which edgeseal does not "
                                               r"describe \(InferenceSession.run takes no NumPy array for it either\)"):
        edgeseal.seal(data, publisher=publisher, devices=[device])


def test_declared_shapes_reads_the_graph_without_onnx():
    from edgeseal.runtime.backends.onnx_graph import declared_shapes

    elem = helper.make_tensor_type_proto(TP.FLOAT, [2])
    model = _model([helper.make_node("Identity", ["a"], ["b"]), helper.make_node("OptionalHasElement", ["o"], ["h"]),
                    helper.make_node("SequenceLength", ["s"], ["n"])],
                   [vi("a", TP.FLOAT, None), helper.make_value_info("o", helper.make_optional_type_proto(elem)),
                    helper.make_tensor_sequence_value_info("s", TP.FLOAT, None)],
                   [vi("b", TP.FLOAT, []), vi("h", TP.BOOL, []), vi("n", TP.INT64, None)])
    assert declared_shapes(model) == {"a": False, "o": True, "b": True, "h": True, "n": False}
    assert declared_shapes(memoryview(model)) == declared_shapes(model)
    for broken in (b"", b"\xff" * 12, model[: len(model) // 2], b"\x3a\x05ab", model + b"\x0b"):
        assert declared_shapes(broken) == {}  # unreadable: callers then assume unknown rank


def test_device_evaluation_names_an_output_it_cannot_compare(publisher, device, tmp_path):
    """The evaluator concatenates array outputs sample by sample; a sequence output is refused by name."""
    import io

    from edgeseal.runtime.evaluate import evaluate

    scalar = helper.make_tensor_type_proto(TP.FLOAT, [])
    model = _model([helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]),
                    helper.make_node("Identity", ["x"], ["scores"])],
                   [vi("x", TP.FLOAT, [None, 2])],
                   [vi("scores", TP.FLOAT, [None, 2]), helper.make_value_info(
                       "z", helper.make_sequence_type_proto(helper.make_map_type_proto(TP.INT64, scalar)))], ml=True)
    data = io.BytesIO()
    np.savez(data, x=np.eye(2, dtype=np.float32), labels=np.array([0, 1]))
    edgeseal.seal(model, publisher=publisher, devices=[device], out=tmp_path / "m.eseal")
    edgeseal.seal(data.getvalue(), publisher=publisher, devices=[device], kind="dataset", out=tmp_path / "d.eseal")
    with pytest.raises(UnsupportedError, match=r"output 'z' is a list .* evaluation compares array outputs only"):
        evaluate(tmp_path / "m.eseal", tmp_path / "d.eseal", key=device, trusted=[publisher])
