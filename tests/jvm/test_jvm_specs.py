"""The Java reader's tensor specs (docs/format.md §2.2) against the Python reader's, case by case.

Every valid spec of tests/runtime/test_tensors.py and the specs the transparency models produce must read
the same in Java (same ``toString`` as Python's ``describe``); every malformed one must make the manifest
invalid in Java as in Python. Skipped only when no JDK is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeseal.runtime.errors import EdgesealError
from edgeseal.runtime.format import Cipher, Codec, Manifest, PayloadInfo
from edgeseal.runtime.tensors import TensorSpec

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None,
    reason="no JDK: install a JDK 17+ (javac and java on PATH) to test the Java reader",
)


def _tensor_cases():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tensor_cases", ROOT / "tests" / "runtime" / "test_tensors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VALID, [case[0] for case in module.MALFORMED]


# Specs edgeseal writes for the transparency models (seq of map, optional feeds, unknown rank, new dtypes).
WRITTEN = [
    TensorSpec(name="z", kind="sequence", elem=TensorSpec(name="", kind="map", key="int64",
                                                           elem=TensorSpec(name="", dtype="float32"))),
    TensorSpec(name="o", kind="optional", optional=True, elem=TensorSpec(name="", dtype="float32", shape=(2,))),
    TensorSpec(name="bias", dtype="float32", shape=(2,), optional=True),
    TensorSpec(name="x", dtype="bfloat16", shape=None),
    TensorSpec(name="t", dtype="string", shape=()),
    TensorSpec(name="u", dtype="uint64", shape=(0, None, 3)),
]


def _manifest_text(inputs: list) -> str:
    payload = PayloadInfo(cipher=Cipher.AES_256_GCM, chunk_size=65536, nonce_prefix=bytes(7), codec=Codec.NONE,
                          size=0, original_size=0)
    d = Manifest(content_format="onnx", payload=payload, created_at=1).to_dict()
    d["inputs"] = inputs
    d["outputs"] = inputs[:1]
    return json.dumps(d)


def _python(text: str) -> str:
    try:
        m = Manifest.from_bytes(text.encode())
    except EdgesealError:
        return "invalid"
    return "\t".join(["ok"] + [f"in {s.describe()}" for s in m.inputs] + [f"out {s.describe()}" for s in m.outputs])


def test_java_reads_every_spec_as_python_does(tmp_path):
    classes = tmp_path / "classes"
    sources = sorted(str(p) for p in (ROOT / "runtime" / "jvm" / "src").rglob("*.java"))
    sources.append(str(ROOT / "tests" / "jvm" / "java" / "io" / "edgeseal" / "SpecDriver.java"))
    proc = subprocess.run(["javac", "--release", "17", "-Xlint:all", "-d", str(classes), *sources],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    valid, malformed = _tensor_cases()
    texts = [_manifest_text([spec]) for spec in valid] + [_manifest_text([s.to_dict() for s in WRITTEN])]
    texts += [_manifest_text([spec]) for spec in malformed]
    (tmp_path / "manifests.json").write_text(json.dumps(texts))
    proc = subprocess.run(["java", "-cp", str(classes), "io.edgeseal.SpecDriver", str(tmp_path / "manifests.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    java = proc.stdout.splitlines()
    python = [_python(text) for text in texts]
    assert len(java) == len(texts)
    assert python.count("invalid") == len(malformed) and all(line.startswith("ok") for line in python[:-len(malformed)])
    for text, j, p in zip(texts, java, python):
        assert j == p, text
    assert "in z: sequence<map<int64, float32[*]>>\tin o: optional<float32[2]> (optional)" in java[len(valid)]
