"""The runtime stands alone: no torch/onnx/converters imported, no file written, no key in a repr."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime.keys import private_pem

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _Block:
        # Makes torch, onnx and the converters unimportable, as on a device without them.
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'onnx', 'onnxscript') or name.startswith('edgeseal.converters'):
                raise ImportError(f'{name} is blocked in this test')
    sys.meta_path.insert(0, _Block())
    """
)

RUN_SEALED = textwrap.dedent(
    """
    import sys, numpy as np
    import edgeseal.runtime as rt
    model = rt.load(sys.argv[1], key=sys.argv[2], trusted=[sys.argv[3]])
    out = model.run(np.load(sys.argv[4]))
    np.save(sys.stdout.buffer, out['logits']) if len(sys.argv) < 6 else None
    leaked = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx') or m.startswith('edgeseal.converters')]
    assert not leaked, leaked
    """
)


def _sealed_files(tmp_path, model: bytes, publisher, device, x16) -> list[str]:
    """model.eseal (sealed for ``device``), device.pem, publisher.pub and x.npy in ``tmp_path``, as paths."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    (tmp_path / "model.eseal").write_bytes(edgeseal.seal(model, publisher=publisher, devices=[device]))
    (tmp_path / "device.pem").write_bytes(private_pem(device))
    (tmp_path / "publisher.pub").write_bytes(publisher.public_key().public_bytes(Encoding.PEM,
                                                                                PublicFormat.SubjectPublicKeyInfo))
    np.save(tmp_path / "x.npy", x16)
    return [str(tmp_path / n) for n in ("model.eseal", "device.pem", "publisher.pub", "x.npy")]


@pytest.fixture
def sealed_files(tmp_path, onnx_model, publisher, device, x16):
    return _sealed_files(tmp_path, onnx_model, publisher, device, x16)


def test_importing_runtime_imports_no_torch_onnx_or_converters():
    code = "import sys, edgeseal, edgeseal.runtime, edgeseal.cli; print(sorted(m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = eval(out)
    assert "edgeseal.runtime" in modules
    assert not [m for m in modules if m.split(".")[0] in ("torch", "onnx", "onnxscript", "onnxruntime", "sklearn")]
    assert not [m for m in modules if m.startswith("edgeseal.converters")]


def test_loads_and_runs_with_torch_unimportable(sealed_files, onnx_model, x16):
    import onnxruntime as ort

    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH + RUN_SEALED, *sealed_files],
                          capture_output=True, check=True)
    import io

    got = np.load(io.BytesIO(proc.stdout))
    want = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"]).run(["logits"], {"x": x16})[0]
    np.testing.assert_array_equal(got, want)
    blocked = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True)
    assert blocked.returncode != 0 and "blocked in this test" in blocked.stderr  # the block really blocks


@pytest.fixture
def big_sealed_files(tmp_path, publisher, device, x16):
    """A model over 1 MiB, whose weights ONNX Runtime reads from the decrypted buffer in place."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgeseal.runtime.backends.onnxruntime import IN_PLACE_MIN_BYTES

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 20_000)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 20_000])],
                              initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10).SerializeToString()
    assert len(model) >= IN_PLACE_MIN_BYTES
    onnx.checker.check_model(onnx.load_from_string(model))
    return _sealed_files(tmp_path, model, publisher, device, x16)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)")
@pytest.mark.parametrize("files", ["sealed_files", "big_sealed_files"])
def test_load_and_run_write_no_file(tmp_path, request, files):
    sealed_files = request.getfixturevalue(files)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    trace = tmp_path / "trace.txt"
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,"
           "linkat,symlink,symlinkat,mkdir,mkdirat,truncate,memfd_create", "-o", str(trace),
           sys.executable, "-c", RUN_SEALED, *sealed_files, "quiet"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    calls = trace.read_text().splitlines()
    assert any("model.eseal" in c and "O_RDONLY" in c for c in calls), "strace saw the package being read"
    writes = [c for c in calls if re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|creat\(|rename|link\(|linkat|mkdir|"
                                                r"truncate|memfd_create", c)]
    writes = [c for c in writes if '"/dev/null"' not in c and '"/dev/tty"' not in c and "ENOENT" not in c]
    assert writes == [], "\n".join(writes)
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []


def test_keys_never_appear_in_reprs_or_messages(device, onnx_model, publisher):
    raw = edgeseal.RawKey(b"\x01" * 32)
    phrase = edgeseal.Passphrase("s3cret-passphrase")
    assert "s3cret" not in repr(phrase) and "01010101" not in repr(raw)
    from edgeseal.runtime.format import PassphraseRecipient, RawKeyRecipient

    assert "s3cret" not in repr(PassphraseRecipient("s3cret-passphrase"))
    assert "\\x01" not in repr(RawKeyRecipient(b"\x01" * 32))
    package = edgeseal.seal(onnx_model, publisher=publisher, passphrase="other")
    for key in (raw, phrase):
        with pytest.raises(edgeseal.InvalidPackage) as err:
            edgeseal.load(package, key=key, trusted=[publisher])
        assert "s3cret" not in str(err.value) and "0101" not in str(err.value)


def test_importing_the_runtime_executes_no_sdk_code():
    """The top-level namespace is lazy: a device importing edgeseal.runtime runs only runtime modules."""
    code = ("import sys, edgeseal.runtime; "
            "print(sorted(m for m in sys.modules if m == 'edgeseal' or m.startswith('edgeseal.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    sdk = [m for m in loaded if m != "edgeseal" and not m.startswith("edgeseal.runtime")]
    assert not sdk, f"importing edgeseal.runtime executed sdk code: {sdk}"
    assert "edgeseal.runtime.format" in loaded  # the check sees real imports


def test_the_lazy_top_level_resolves_every_public_name_and_one_version():
    from importlib import metadata

    from edgeseal.runtime import __version__ as runtime_version

    for name in edgeseal.__all__:
        assert getattr(edgeseal, name) is not None
    assert edgeseal.seal.__module__ == "edgeseal.seal"
    assert edgeseal.__version__ == runtime_version == metadata.version("edgeseal")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgeseal.nope


def test_importing_the_seal_module_first_does_not_shadow_the_seal_function():
    """`from edgeseal.seal import ...` before anyone touched `edgeseal.seal` used to bind the module over the
    function (the import system sets submodules on their package): a fresh interpreter shows the order."""
    code = ("import edgeseal.seal as module_first, edgeseal, sys\n"
            "from edgeseal.seal import detect_format\n"
            "assert callable(edgeseal.seal) and edgeseal.seal.__module__ == 'edgeseal.seal', edgeseal.seal\n"
            "assert sys.modules['edgeseal.seal'].seal is edgeseal.seal\n"
            "from edgeseal import seal\n"
            "assert seal is edgeseal.seal\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
