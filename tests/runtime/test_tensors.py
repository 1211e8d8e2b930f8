"""TensorSpec/QuantParams: the manifest form round-trips, and from_dict rejects every malformed spec."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeseal.runtime import ConfigError, InvalidPackage
from edgeseal.runtime.format import Manifest
from edgeseal.runtime.tensors import DTYPES, QuantParams, TensorSpec

X = {"name": "x", "dtype": "int8", "shape": [1, 4]}
Q = {"scale": [0.5], "zero_point": [-3], "axis": None}


def _nest(depth: int) -> dict:
    spec: dict = {"dtype": "float32", "shape": None}
    for _ in range(depth - 1):
        spec = {"kind": "sequence", "elem": spec}
    return {"name": "deep", **spec}


MALFORMED = [
    ([X], TypeError, "a tensor spec must be an object, got list"),
    ({"dtype": "int8", "shape": []}, ValueError, "missing member 'name'"),
    ({**X, "name": 3}, TypeError, "name must be a string, got 3"),
    ({**X, "name": ""}, ValueError, "name is empty"),
    ({"name": "x", "shape": []}, ValueError, "tensor spec 'x': missing member 'dtype'"),
    ({"name": "x", "dtype": "int8"}, ValueError, "tensor spec 'x': missing member 'shape'"),
    ({**X, "dtype": 5}, TypeError, "dtype must be a string, got 5"),
    ({**X, "dtype": "float128"}, ValueError, "dtype 'float128' is not one of"),
    ({**X, "dtype": "Float32"}, ValueError, "dtype 'Float32' is not one of"),
    ({**X, "shape": "1x4"}, TypeError, "shape must be an array or null"),
    ({**X, "shape": True}, TypeError, "shape must be an array or null"),
    ({**X, "shape": [4.7]}, TypeError, r"shape\[0\] must be an integer or null, got 4.7"),
    ({**X, "shape": [1, True]}, TypeError, r"shape\[1\] must be an integer or null, got True"),
    ({**X, "shape": [1, "n"]}, TypeError, r"shape\[1\] must be an integer or null, got 'n'"),
    ({**X, "shape": [-1]}, ValueError, r"shape\[0\] = -1 is outside 0 ... 2\*\*62"),
    ({**X, "shape": [2**70]}, ValueError, r"shape\[0\] = 1180591620717411303424 is outside"),
    ({**X, "shape": [2**62 + 1]}, ValueError, r"shape\[0\] = 4611686018427387905 is outside"),
    ({**X, "kind": 1}, TypeError, "kind must be a string, got 1"),
    ({**X, "kind": "tuple"}, ValueError, "kind 'tuple' is not one of"),
    ({**X, "optional": "yes"}, TypeError, "optional must be true or false"),
    ({**X, "optional": 1}, TypeError, "optional must be true or false"),
    ({**X, "elem": {"dtype": "int8", "shape": []}}, ValueError, "a tensor spec has no 'elem'"),
    ({**X, "quant": "0.5"}, TypeError, "tensor spec 'x': quant must be an object"),
    ({**X, "quant": {"zero_point": [0]}}, ValueError, "quant is missing member 'scale'"),
    ({**X, "quant": {"scale": [0.5]}}, ValueError, "quant is missing member 'zero_point'"),
    ({**X, "quant": {**Q, "scale": 0.5}}, TypeError, "quant.scale must be an array"),
    ({**X, "quant": {**Q, "scale": ["0.5"]}}, TypeError, "quant.scale holds '0.5'"),
    ({**X, "quant": {**Q, "scale": [True]}}, TypeError, "quant.scale holds True"),
    ({**X, "quant": {**Q, "scale": [math.nan]}}, ValueError, "scales must be finite numbers > 0, got \\[nan\\]"),
    ({**X, "quant": {**Q, "scale": [math.inf]}}, ValueError, "scales must be finite numbers > 0"),
    ({**X, "quant": {**Q, "scale": [0.0]}}, ValueError, "scales must be finite numbers > 0"),
    ({**X, "quant": {**Q, "scale": [-0.5]}}, ValueError, "scales must be finite numbers > 0"),
    ({**X, "quant": {**Q, "scale": [10**400]}}, ValueError, "int too large to convert to float"),
    ({**X, "quant": {**Q, "scale": []}}, ValueError, "as many zero points as scales \\(>= 1\\)"),
    ({**X, "quant": {**Q, "zero_point": [1.0]}}, TypeError, "quant.zero_point holds 1.0"),
    ({**X, "quant": {**Q, "zero_point": [False]}}, TypeError, "quant.zero_point holds False"),
    ({**X, "quant": {**Q, "zero_point": [128]}}, ValueError,
     r"zero points \[128\] are outside the int8 range \[-128, 127\]"),
    ({**X, "dtype": "uint8", "quant": {**Q, "zero_point": [-1]}}, ValueError, "outside the uint8 range"),
    ({**X, "quant": {**Q, "zero_point": [0, 0]}}, ValueError, "1 scales and 2 zero points"),
    ({**X, "quant": {**Q, "axis": True}}, TypeError, "quant.axis must be an integer or null, got True"),
    ({**X, "quant": {**Q, "axis": 1.0}}, TypeError, "quant.axis must be an integer or null"),
    ({**X, "quant": {**Q, "axis": -1}}, ValueError, "axis must be an integer >= 0"),
    ({**X, "quant": {**Q, "axis": 2}}, ValueError, "quantization axis 2 is out of range for rank 2"),
    ({**X, "quant": {"scale": [0.5, 0.25], "zero_point": [0, 0]}}, ValueError, "per-channel .* needs an axis"),
    ({**X, "quant": {"scale": [0.5] * 3, "zero_point": [0] * 3, "axis": 1}}, ValueError,
     "3 scales for axis 1 of size 4"),
    ({**X, "dtype": "float32", "quant": Q}, ValueError, "quantization parameters need an integer dtype, not float32"),
    ({"name": "s", "kind": "sequence"}, ValueError, "a sequence spec is missing member 'elem'"),
    ({"name": "s", "kind": "sequence", "elem": [1]}, TypeError, "a tensor spec must be an object, got list"),
    ({"name": "s", "kind": "sequence", "dtype": "int8", "elem": {"dtype": "int8", "shape": None}}, ValueError,
     "a sequence spec has no 'dtype'"),
    ({"name": "s", "kind": "sequence", "elem": {"name": "e", "dtype": "int8", "shape": None}}, ValueError,
     "an element spec \\(elem\\) has no name"),
    ({"name": "s", "kind": "sequence", "elem": {"dtype": "int8", "shape": None, "optional": True}}, ValueError,
     "only inputs and outputs can be optional"),
    ({"name": "s", "kind": "sequence", "elem": {"dtype": "int8"}}, ValueError, "element spec: missing member 'shape'"),
    ({"name": "s", "kind": "sequence", "key": "int64", "elem": {"dtype": "int8", "shape": None}}, ValueError,
     "only map specs have a 'key'"),
    ({"name": "m", "kind": "map", "elem": {"dtype": "int8", "shape": None}}, ValueError, "missing member 'key'"),
    ({"name": "m", "kind": "map", "key": 7, "elem": {"dtype": "int8", "shape": None}}, TypeError,
     "key must be a dtype"),
    ({"name": "m", "kind": "map", "key": "float32", "elem": {"dtype": "int8", "shape": None}}, ValueError,
     "map key dtype 'float32' is not one of"),
    (_nest(9), ValueError, "specs nest at most 8 levels deep"),
]


@pytest.mark.parametrize("spec, error, message", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_from_dict_rejects_malformed_specs(spec, error, message):
    with pytest.raises(error, match=message):
        TensorSpec.from_dict(spec)


def test_malformed_spec_in_a_manifest_is_an_opaque_invalid_package():
    good = Manifest(content_format="onnx", inputs=(TensorSpec.from_dict(X),))
    d = json.loads(good.to_bytes())
    d["payload"] = {"cipher": "aes-256-gcm", "chunk_size": 65536, "nonce_prefix": "00" * 7, "codec": "none",
                    "size": 0, "original_size": 0}
    assert Manifest.from_bytes(json.dumps(d).encode()).inputs == good.inputs
    for bad in ([4.7], [True], [2**70]):
        d["inputs"][0]["shape"] = bad
        with pytest.raises(InvalidPackage):
            Manifest.from_bytes(json.dumps(d).encode())
    d["inputs"][0] = {**X, "quant": {**Q, "scale": [math.nan]}}
    with pytest.raises(InvalidPackage):
        Manifest.from_bytes(json.dumps(d).encode())


VALID = [
    {"name": "x", "dtype": "float32", "shape": [None, 16]},  # what every v1 writer wrote
    {"name": "x", "dtype": "int8", "shape": [1, 4], "quant": {"scale": [0.5], "zero_point": [-10], "axis": None}},
    {"name": "w", "dtype": "int8", "shape": [3, None],
     "quant": {"scale": [0.5, 0.25, 1.0], "zero_point": [0, 0, 0], "axis": 0}},
    {"name": "s", "dtype": "string", "shape": []},
    {"name": "u", "dtype": "uint64", "shape": None},
    {"name": "z", "dtype": "bool", "shape": [0, 2**62]},
    {"name": "b", "dtype": "float32", "shape": [2], "optional": True},
    {"name": "o", "kind": "optional", "optional": True, "elem": {"dtype": "float32", "shape": [2]}},
    {"name": "q", "kind": "sequence", "elem": {"kind": "map", "key": "string",
                                              "elem": {"dtype": "float32", "shape": None}}},
    _nest(8),
]


@pytest.mark.parametrize("spec", VALID, ids=[s["name"] for s in VALID])
def test_valid_specs_round_trip_exactly(spec):
    parsed = TensorSpec.from_dict(spec)
    assert parsed.to_dict() == spec
    assert TensorSpec.from_dict(json.loads(json.dumps(parsed.to_dict()))) == parsed


def test_unknown_members_are_ignored_and_defaults_match_v1():
    spec = TensorSpec.from_dict({**X, "future_member": {"anything": 1}})
    assert spec == TensorSpec(name="x", dtype="int8", shape=(1, 4))
    assert spec.kind == "tensor" and spec.optional is False and spec.to_dict() == X


def test_every_dtype_is_accepted_and_numpy_types_are_known():
    for dtype in sorted(DTYPES):
        spec = TensorSpec.from_dict({"name": "t", "dtype": dtype, "shape": [1]})
        if dtype == "string":
            assert spec.numpy_dtype == np.dtype(object)
        elif spec.numpy_dtype is not None:
            assert spec.numpy_dtype.name == dtype
    assert TensorSpec(name="t", dtype="bfloat16", shape=()).numpy_dtype is None


def test_direct_construction_raises_config_error():
    with pytest.raises(ConfigError, match="dtype 'float128' is not one of"):
        TensorSpec(name="x", dtype="float128", shape=())
    with pytest.raises(ConfigError, match="scales must be finite numbers > 0"):
        QuantParams(scale=(math.nan,), zero_point=(0,))
    with pytest.raises(ConfigError, match="a sequence spec needs an unnamed element spec"):
        TensorSpec(name="s", kind="sequence")


def test_the_tensor_spec_vector_reads_as_written():
    """tests/vectors/valid-tensor-specs-every-kind.eseal pins the §2.2 forms for readers in other languages."""
    from pathlib import Path

    from edgeseal.runtime.format import Package

    data = (Path(__file__).resolve().parents[1] / "vectors" / "valid-tensor-specs-every-kind.eseal").read_bytes()
    manifest = Package.parse(data).manifest
    assert [s.describe() for s in manifest.inputs] == [
        "x: float32[?, 4]", "text: string[]", "any_rank: uint64[*]", "bias: float32[2] (optional)",
        "maybe: optional<float16[0, 2]> (optional)", "items: sequence<int64[*]>", "features: map<string, float32[]>",
    ]
    assert [s.describe() for s in manifest.outputs] == [
        "probs: sequence<map<int64, float32[*]>>", "q: int8[1, 3]", "h: bfloat16[?]"]
    assert manifest.outputs[1].quant == QuantParams(scale=(0.5, 0.25, 0.125), zero_point=(0, -1, 1), axis=1)
    raw = json.loads(data[16:16 + int.from_bytes(data[12:16], "big")])
    assert [s.to_dict() for s in manifest.inputs + manifest.outputs] == raw["inputs"] + raw["outputs"]
    assert raw["inputs"][2] == {"name": "any_rank", "dtype": "uint64", "shape": None}
