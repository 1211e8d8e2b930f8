"""Generate the frozen codebook vectors (docs/format.md §11); released vectors never change, new ones may be added.

    python tests/vectors/codebook/generate.py            # writes the files, codebook.json and packages.json here
    python tests/vectors/codebook/generate.py --check    # regenerates in memory and compares byte for byte

* ``*.escb``: one record (§11.2); ``*.escs``: a record set (§11.3); ``*.escm``: an onnx+codebook container
  (§11.1). ``codebook.json`` gives, for each, the tensors it decodes to (dtype, shape, SHA-256 of the
  little-endian bytes) or the error a reader must raise.
* ``v2-valid-onnx-codebook-x25519-signed.eseal``: a sealed package (format v2, BLAKE3 digests) whose
  payload is ``model-matmul.escm``, written through ``_seal_from_parts`` with the keys of
  ``tests/vectors/vectors.json``; ``packages.json`` describes it in that file's schema, plus the model's
  expected output and what the JVM reader answers (it refuses the content format).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import lzma
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("edgeseal_vectors", HERE.parent / "generate.py")
V = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(V)  # the main generator: its keys, clock and deterministic sealing

from edgeseal.runtime import codebook as cb  # noqa: E402
from edgeseal.runtime.format import DeviceRecipient, RawKeyRecipient  # noqa: E402
from edgeseal.runtime.tensors import TensorSpec  # noqa: E402


def _head(*, dtype: int = 1, bits: int, coding: int, shape: tuple[int, ...], groups: int = 1, entries: int,
          stream_len: int, version: int = 1) -> bytes:
    return struct.pack("<4sBBBBB3sIHHQ", b"ESCB", version, dtype, bits, coding, len(shape), b"\0\0\0", groups,
                       entries, 0, stream_len) + struct.pack(f"<{len(shape)}Q", *shape)


def _record(books: np.ndarray, indices: np.ndarray, shape: tuple[int, ...], *, bits: int, coding: int,
            dtype: int = 1, groups: int = 1, stream: bytes | None = None) -> bytes:
    """A record built field by field from §11.2 (not through the encoder under test)."""
    packed = cb.pack_indices(indices, bits)
    if stream is None:
        stream = {0: packed, 1: zlib.compress(packed, 9), 2: zlib.compress(indices.astype(np.uint8).tobytes(), 9),
                  3: lzma.compress(indices.astype(np.uint8).tobytes(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                   preset=6)}[coding]
    entries = books.size // groups
    return _head(dtype=dtype, bits=bits, coding=coding, shape=shape, groups=groups, entries=entries,
                 stream_len=len(stream)) + books.tobytes() + stream


def _set(items: list[tuple[str, bytes]]) -> bytes:
    out = struct.pack("<4sBxxxI", b"ESCS", 1, len(items))
    for name, record in items:
        raw = name.encode()
        out += struct.pack("<HQ", len(raw), len(record)) + raw + record
    return out


def _tensor_info(arr: np.ndarray) -> dict:
    return {"dtype": str(arr.dtype), "shape": list(arr.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()}


def _matmul_graph(layout: dict[str, tuple[int, int]] | None) -> bytes:
    """x (N, 4) @ w (4, 3): w external at edgeseal:codebook when ``layout`` is given."""
    from onnx import TensorProto, helper

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3])
    w.data_location = TensorProto.EXTERNAL
    offset, length = (layout or {"w": (0, 48)})["w"]
    for key, value in (("location", cb.EXTERNAL_LOCATION), ("offset", str(offset)), ("length", str(length))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "codebook-vector",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeseal-test-vectors")
    m.ir_version = 9
    return m.SerializeToString()


W_BOOK = np.array([-0.75, 0.0, 0.5, 1.25], "<f4")
W_INDEX = np.array([3, 1, 0, 1, 2, 2, 0, 3, 1, 1, 1, 2], np.uint8)  # 4 x 3, 2 bits


def build() -> tuple[list[tuple[dict, bytes]], list[tuple[dict, bytes]]]:
    """(content vectors, sealed-package vectors), each (description, bytes), in a fixed order."""
    v: list[tuple[dict, bytes]] = []
    nan = np.array([0x7FC00001], np.uint32).view("<f4")[0]
    special = np.array([-0.0, 0.0, 1.5, nan, -np.inf], "<f4")
    idx = np.array([0, 1, 2, 3, 4, 1, 1, 1, 0, 2, 3, 4, 4, 4, 1, 0, 0, 0, 2, 2, 1, 3, 3, 1], np.uint8)
    v.append(({"name": "record-float32-3bit-packed", "kind": "record", "arrays": {"": special[idx].reshape(4, 6)}},
              _record(special, idx, (4, 6), bits=3, coding=0)))
    books = np.array([[-1, 0, 1, 2], [0.25, 0.5, 0.75, 1.0], [7, 8, 9, 10], [0, -2, -4, -6]], "<f4").reshape(-1)
    idx2 = np.array([(i * 7 + i // 3) % 4 for i in range(4 * 9)], np.uint8)
    per_channel = np.stack([books.reshape(4, 4)[g][idx2.reshape(4, 9)[g]] for g in range(4)]).reshape(4, 1, 3, 3)
    v.append(({"name": "record-float32-per-channel-zlib-packed", "kind": "record", "arrays": {"": per_channel}},
              _record(books, idx2, (4, 1, 3, 3), bits=2, coding=1, groups=4)))
    idx3 = np.array([i % 5 if i % 3 else 0 for i in range(40)], np.uint8)
    int8_book = np.array([0, -128, 127, 5, -5], "i1")
    v.append(({"name": "record-int8-zlib-bytes", "kind": "record", "arrays": {"": int8_book[idx3].reshape(8, 5)}},
              _record(int8_book, idx3, (8, 5), bits=3, coding=2, dtype=2)))
    uint8_book, idx4 = np.array([3, 200], "u1"), np.array([0, 1, 1, 0, 1, 1, 1], np.uint8)
    v.append(({"name": "record-uint8-xz-bytes", "kind": "record", "arrays": {"": uint8_book[idx4]}},
              _record(uint8_book, idx4, (7,), bits=1, coding=3, dtype=3)))
    scalar = np.array(2.5, "<f4")
    v.append(({"name": "record-scalar", "kind": "record", "arrays": {"": scalar}},
              _record(np.array([2.5], "<f4"), np.array([0], np.uint8), (), bits=1, coding=0)))
    v.append(({"name": "record-empty", "kind": "record", "arrays": {"": np.zeros((0, 3), "<f4")}},
              _record(np.array([0.0], "<f4"), np.zeros(0, np.uint8), (0, 3), bits=1, coding=0)))
    w_record = _record(W_BOOK, W_INDEX, (4, 3), bits=2, coding=0)
    w = W_BOOK[W_INDEX].reshape(4, 3)
    v.append(({"name": "set-two-tensors", "kind": "set", "arrays": {"w": w, "scalar": scalar}},
              _set([("w", w_record), ("scalar", v[4][1])])))
    layout, _ = cb.blob_layout({"w": ((4, 3), np.dtype("<f4"))})
    v.append(({"name": "model-matmul", "kind": "model", "arrays": {"w": w}},
              cb.pack_model(_matmul_graph(layout), _set([("w", w_record)]))))

    good = v[0][1]

    def bad(name: str, data: bytes, error: str = "InvalidPackage", kind: str = "record") -> None:
        v.append(({"name": "invalid-" + name, "kind": kind, "error": error}, data))

    bad("record-magic", b"ESCX" + good[4:])
    bad("record-version", good[:4] + b"\x02" + good[5:])
    bad("record-bits-not-minimal", _record(W_BOOK, W_INDEX, (4, 3), bits=3, coding=0))
    bad("record-index-beyond-entries", _record(W_BOOK[:3], W_INDEX, (4, 3), bits=2, coding=0))
    bad("record-padding-bits", _record(W_BOOK, W_INDEX[:3], (3,), bits=2, coding=0, stream=bytes([0b11010011])))
    bad("record-trailing-byte", good + b"\x00")
    bad("record-truncated", good[:-1])
    bad("record-zlib-longer-than-declared", _record(W_BOOK, W_INDEX, (4, 3), bits=2, coding=1,
                                                    stream=zlib.compress(cb.pack_indices(W_INDEX, 2) + b"\0")))
    bad("record-groups-do-not-divide", _record(np.tile(W_BOOK, 5), W_INDEX, (4, 3), bits=2, coding=0, groups=5))
    bad("record-over-element-limit", _head(bits=1, coding=0, shape=(1 << 20, 1 << 20), entries=2, stream_len=0)
        + np.zeros(2, "<f4").tobytes(), error="LimitExceeded")
    bad("set-duplicate-name", _set([("w", w_record), ("w", w_record)]), kind="set")
    bad("set-trailing-byte", _set([("w", w_record)]) + b"\0", kind="set")
    moved = {"w": (64, 48)}
    bad("model-graph-offset-not-the-layout", cb.pack_model(_matmul_graph(moved), _set([("w", w_record)])),
        kind="model")
    bad("model-graph-len-beyond-payload", b"ESCM\x01\0\0\0" + struct.pack("<Q", 1 << 40), kind="model")

    seal = V._seal_any_version
    model = v[7][1]
    specs = dict(inputs=(TensorSpec(name="x", dtype="float32", shape=(None, 4)),),
                 outputs=(TensorSpec(name="y", dtype="float32", shape=(None, 3)),))
    package = seal(model, V._manifest(content_format="onnx+codebook", **specs),
                   [DeviceRecipient(V._raw_public(V.DEVICE)), RawKeyRecipient(V.RAW)], V.PUBLISHER, seed=b"cb1",
                   chunk_size=1024, version=2, digest="blake3")
    packages = [({"name": "v2-valid-onnx-codebook-x25519-signed", "open_with": ["x25519", "raw"], "format_version": 2,
                  "plaintext_sha256": hashlib.sha256(model).hexdigest(), "jvm_error": "UnsupportedError"}, package)]
    return v, packages


def expected(v: list[tuple[dict, bytes]]) -> dict:
    """codebook.json: what each content vector decodes to — the arrays it was built from (never the decoder's
    output), or the error a reader must raise."""
    out = []
    for meta, data in v:
        entry = {"file": meta["name"] + "." + {"record": "escb", "set": "escs", "model": "escm"}[meta["kind"]],
                 "kind": meta["kind"], "sha256": hashlib.sha256(data).hexdigest()}
        if "error" in meta:
            entry["error"] = meta["error"]
        else:
            entry["tensors"] = {n: _tensor_info(np.asarray(a)) for n, a in meta["arrays"].items()}
        out.append(entry)
    w = W_BOOK[W_INDEX].reshape(4, 3)
    return {"max_elements": cb.MAX_ELEMENTS, "vectors": out,
            "model_matmul": {"input_x": np.eye(4, dtype="<f4").tolist(), "output_y": w.tolist()}}


def packages_json(packages: list[tuple[dict, bytes]]) -> dict:
    entries = []
    for meta, data in packages:
        entries.append({"file": meta["name"] + ".eseal", "sha256": hashlib.sha256(data).hexdigest(),
                        "open_with": meta["open_with"], "trusted": ["publisher_public"], "allow_unsigned": False,
                        "min_version": None, "format_version": meta["format_version"],
                        "plaintext_sha256": meta["plaintext_sha256"], "content_format": "onnx+codebook",
                        "payload_file": "model-matmul.escm", "jvm_error": meta["jvm_error"]})
    return {"format_versions": [2], "keys": V.keys_json(), "vectors": entries}


def _files(v, packages) -> dict[str, bytes]:
    files = {e["file"]: data for e, (_, data) in zip(expected(v)["vectors"], v)}
    files.update({meta["name"] + ".eseal": data for meta, data in packages})
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args()
    v, packages = build()
    files = _files(v, packages)
    if args.check:
        stale = [name for name, data in files.items() if (HERE / name).read_bytes() != data]
        print("\n".join(stale) or "all codebook vectors reproduce byte for byte")
        return 1 if stale else 0
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    (HERE / "codebook.json").write_text(json.dumps(expected(v), indent=2) + "\n")
    (HERE / "packages.json").write_text(json.dumps(packages_json(packages), indent=2) + "\n")
    print(f"wrote {len(files)} codebook vectors to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
