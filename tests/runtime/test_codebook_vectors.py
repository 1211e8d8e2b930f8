"""The frozen codebook vectors (tests/vectors/codebook, docs/format.md §11) read as described."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseal.runtime import codebook, errors

HERE = Path(__file__).resolve().parents[1] / "vectors" / "codebook"
SPEC = json.loads((HERE / "codebook.json").read_text())
PACKAGES = json.loads((HERE / "packages.json").read_text())
KEYS = PACKAGES["keys"]


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _decode(vector: dict, data: bytes) -> dict[str, np.ndarray]:
    if vector["kind"] == "record":
        return {"": codebook.decode_bytes(data)}
    if vector["kind"] == "set":
        return codebook.decode_tensors(data)
    graph, records = codebook.unpack_model(data)
    blob, layout = codebook.weights_blob(records)
    codebook.check_graph(graph, layout)
    return codebook.decode_tensors(records)


def test_vectors_cover_every_coding_dtype_and_error() -> None:
    assert {v["kind"] for v in SPEC["vectors"]} == {"record", "set", "model"}
    assert {v.get("error") for v in SPEC["vectors"]} == {None, "InvalidPackage", "LimitExceeded"}
    codings = {HERE.joinpath(v["file"]).read_bytes()[7] for v in SPEC["vectors"] if v["kind"] == "record" and "error" not in v}
    dtypes = {HERE.joinpath(v["file"]).read_bytes()[5] for v in SPEC["vectors"] if v["kind"] == "record" and "error" not in v}
    assert codings == {0, 1, 2, 3} and dtypes == {1, 2, 3}


@pytest.mark.parametrize("vector", SPEC["vectors"] + PACKAGES["vectors"], ids=lambda v: v["file"])
def test_vector_file_is_frozen(vector: dict) -> None:
    assert hashlib.sha256((HERE / vector["file"]).read_bytes()).hexdigest() == vector["sha256"]


@pytest.mark.parametrize("vector", SPEC["vectors"], ids=lambda v: v["file"])
def test_vector_decodes_as_described(vector: dict) -> None:
    data = (HERE / vector["file"]).read_bytes()
    if "error" in vector:
        with pytest.raises(getattr(errors, vector["error"])) as err:
            _decode(vector, data)
        assert type(err.value).__name__ == vector["error"]
        return
    tensors = _decode(vector, data)
    assert list(tensors) == list(vector["tensors"])
    for name, want in vector["tensors"].items():
        got = tensors[name]
        assert (str(got.dtype), list(got.shape), _sha(got)) == (want["dtype"], want["shape"], want["sha256"])


def test_model_vector_runs_in_onnx_runtime() -> None:
    pytest.importorskip("onnxruntime")
    graph, records = codebook.unpack_model((HERE / "model-matmul.escm").read_bytes())
    sess = codebook.session(graph, records)
    x = np.asarray(SPEC["model_matmul"]["input_x"], np.float32)
    assert sess.run(None, {"x": x})[0].tolist() == SPEC["model_matmul"]["output_y"]


def test_sealed_codebook_package_loads_and_runs() -> None:
    pytest.importorskip("onnxruntime")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    import edgeseal

    (vector,) = PACKAGES["vectors"]
    data = (HERE / vector["file"]).read_bytes()
    device = X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS["x25519_private"]))
    trusted = [bytes.fromhex(KEYS["publisher_public"])]
    manifest, plain = edgeseal.runtime.open_payload(data, key=device, trusted=trusted, now=KEYS["now"])
    assert manifest.content_format == vector["content_format"] == "onnx+codebook"
    assert hashlib.sha256(bytes(plain.view)).hexdigest() == vector["plaintext_sha256"]
    assert bytes(plain.view) == (HERE / vector["payload_file"]).read_bytes()
    model = edgeseal.load(data, key=edgeseal.runtime.RawKey(bytes.fromhex(KEYS["raw"])), trusted=trusted,
                          now=KEYS["now"])
    try:
        x = np.asarray(SPEC["model_matmul"]["input_x"], np.float32)
        assert model.run({"x": x})["y"].tolist() == SPEC["model_matmul"]["output_y"]
    finally:
        model.close()


def test_generator_reproduces_vectors_byte_for_byte() -> None:
    pytest.importorskip("onnx")
    proc = subprocess.run([sys.executable, str(HERE / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
