"""onnx+codebook packages: sealed, loaded, decoded in memory, run bit-identically to the clustered ONNX model."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import edgeseal  # noqa: E402
from edgeseal.seal import seal  # noqa: E402  (the function; `edgeseal.seal` is also the module's name)
from edgeseal.runtime import codebook  # noqa: E402
from edgeseal.runtime.errors import ConfigError, InvalidPackage  # noqa: E402


def _clustered_model() -> bytes:
    """Conv -> Relu -> Flatten -> MatMul, weights with 8 and 4 distinct values, one int8-free bias left inline."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    conv = np.sort(rng.normal(size=8)).astype(np.float32)[rng.integers(0, 8, size=(16, 3, 3, 3))]
    conv[rng.random(conv.shape) < 0.5] = 0.0  # pruned
    fc = np.array([-0.5, -0.1, 0.2, 0.7], np.float32)[rng.integers(0, 4, size=(16 * 6 * 6, 10))]
    bias = rng.normal(size=16).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                          [numpy_helper.from_array(conv, "conv_w"), numpy_helper.from_array(bias, "conv_b"),
                           numpy_helper.from_array(fc, "fc_w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


@pytest.fixture(scope="module")
def parties():
    return edgeseal.generate_publisher_key(), edgeseal.generate_device_key()


def test_sealed_codebook_model_runs_bit_identically(parties) -> None:
    from edgeseal.converters.cluster import codebook_model

    publisher, device = parties
    fp32 = _clustered_model()
    payload = codebook_model(fp32)
    assert payload[:4] == b"ESCM" and len(payload) < len(fp32) / 4
    graph, records = codebook.unpack_model(payload)
    assert set(codebook.decode_tensors(records)) == {"conv_w", "fc_w"}  # the bias has 16 values: stays in the graph
    sealed = seal(payload, publisher=publisher, devices=[device.public_key()], compression="zlib")
    model = edgeseal.load(sealed, key=device, trusted=[publisher.public_key()])
    try:
        assert model.manifest.content_format == "onnx+codebook"
        x = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32)
        ref = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        out = model.run({"x": x})["y"]
        assert out.tobytes() == ref.tobytes()
        decoded = model._session._decoded
        assert decoded is not None and decoded.any()
    finally:
        model.close()
    assert not decoded.any()  # the decoded weights are wiped at close


def test_weights_blob_layout_matches_the_graph(parties) -> None:
    from onnx import numpy_helper

    from edgeseal.converters.cluster import codebook_model

    fp32 = _clustered_model()
    graph, records = codebook.unpack_model(codebook_model(fp32))
    blob, layout = codebook.weights_blob(records)
    proto = onnx.load_from_string(bytes(graph))
    originals = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(fp32).graph.initializer}
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            entry = {e.key: e.value for e in init.external_data}
            assert entry["location"] == codebook.EXTERNAL_LOCATION
            offset, length = int(entry["offset"]), int(entry["length"])
            assert (offset, length) == layout[init.name] and offset % codebook.BLOB_ALIGN == 0
            got = blob[offset:offset + length].view(np.float32).reshape(originals[init.name].shape)
            assert got.tobytes() == originals[init.name].tobytes()  # bit for bit what the converter clustered


@pytest.mark.parametrize("damage", ["magic", "graph_len", "record_byte", "truncated", "graph_offset"])
def test_malformed_container_in_an_authentic_package_is_invalid(parties, damage) -> None:
    from edgeseal.converters.cluster import codebook_model

    publisher, device = parties
    payload = bytearray(codebook_model(_clustered_model()))
    graph, records = codebook.unpack_model(bytes(payload))
    if damage == "magic":
        payload[:4] = b"ESCX"
        payload = b"ESCM" + bytes([2]) + bytes(payload[5:])  # right magic, unknown version
    elif damage == "graph_len":
        payload[8:16] = (len(payload)).to_bytes(8, "little")
    elif damage == "record_byte":
        at = 16 + len(graph) + 8 + 2 + 8 + len("conv_w") + 6  # inside the first record's header: its bits
        payload[at] = 9
    elif damage == "graph_offset":  # the graph points fc_w 64 bytes later than the layout puts it
        proto = onnx.load_from_string(bytes(graph))
        init = next(i for i in proto.graph.initializer if i.name == "fc_w")
        entry = next(e for e in init.external_data if e.key == "offset")
        entry.value = str(int(entry.value) + 64)
        payload = codebook.pack_model(proto.SerializeToString(), bytes(records))
    else:
        payload = payload[:-3]
    with pytest.raises(ConfigError, match="not a valid onnx\\+codebook payload"):  # seal refuses to write it
        seal(bytes(payload), publisher=publisher, devices=[device.public_key()])
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from edgeseal.runtime.format import DeviceRecipient, Manifest, write_package

    raw_device = device.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sealed = write_package(bytes(payload), Manifest(content_format="onnx+codebook"), [DeviceRecipient(raw_device)],
                           publisher)
    with pytest.raises(InvalidPackage):  # authentic, but its content does not decode
        edgeseal.load(sealed, key=device, trusted=[publisher.public_key()])


def test_the_manifest_content_format_decides_the_decoding(parties) -> None:
    """onnx+codebook payloads are decoded only under that content format, and must be containers under it."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from edgeseal.converters.cluster import codebook_model
    from edgeseal.runtime import backends
    from edgeseal.runtime.errors import UnsupportedError
    from edgeseal.runtime.format import DeviceRecipient, Manifest, write_package

    publisher, device = parties
    assert backends.select("onnx+codebook", "onnxruntime").FORMAT == "onnx+codebook"
    assert "onnxruntime" in backends.describe() and "onnxruntime_codebook" not in backends.describe()
    raw_device = device.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    fp32 = _clustered_model()

    def sealed(payload: bytes, content_format: str) -> bytes:
        return write_package(payload, Manifest(content_format=content_format), [DeviceRecipient(raw_device)], publisher)

    with pytest.raises(InvalidPackage):  # a plain ONNX file is not an onnx+codebook payload
        edgeseal.load(sealed(fp32, "onnx+codebook"), key=device, trusted=[publisher.public_key()])
    with pytest.raises(UnsupportedError, match="cannot load this model"):  # nor is a container an ONNX file
        edgeseal.load(sealed(codebook_model(fp32), "onnx"), key=device, trusted=[publisher.public_key()])
