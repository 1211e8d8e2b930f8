"""The CLI as a user runs it: keygen, seal, inspect, run; --json; exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def edgeseal(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "edgeseal", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, onnx_model):
    d = tmp_path_factory.mktemp("cli")
    (d / "mlp.onnx").write_bytes(onnx_model)
    np.save(d / "x.npy", np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32))
    edgeseal("keygen", "publisher", "-o", "publisher", cwd=d, env={"PUB_PW": "pub-secret"})
    edgeseal("keygen", "device", "-o", "pi", cwd=d)
    edgeseal("keygen", "device", "-o", "other", cwd=d)
    return d


def test_keygen_writes_0600_private_and_public(workdir):
    for stem in ("publisher", "pi"):
        assert stat.S_IMODE((workdir / f"{stem}.pem").stat().st_mode) == 0o600
        assert b"PUBLIC KEY" in (workdir / f"{stem}.pub").read_bytes()
    out = json.loads(edgeseal("--json", "keygen", "raw", "-o", "k", cwd=workdir).stdout)
    assert out["kind"] == "raw" and len(out["fingerprint"]) == 32
    assert stat.S_IMODE((workdir / "k.key").stat().st_mode) == 0o600
    again = edgeseal("keygen", "device", "-o", "pi", cwd=workdir, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_seal_inspect_run_round_trip(workdir):
    sealed = json.loads(edgeseal("--json", "seal", "mlp.onnx", "-o", "mlp.eseal", "--publisher", "publisher.pem",
                                 "--device", "pi.pub", "--version", "3", "--expires", "30d", cwd=workdir).stdout)
    assert sealed["size"] == (workdir / "mlp.eseal").stat().st_size and len(sealed["sha256"]) == 64

    info = json.loads(edgeseal("--json", "inspect", "mlp.eseal", "--trusted", "publisher.pub", cwd=workdir).stdout)
    assert info["signature"] == "verified" and info["manifest"]["model_version"] == 3
    assert info["manifest"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 16]}]
    assert len(info["slots"]) == 1 and info["slots"][0].startswith("x25519 device key")
    text = edgeseal("inspect", "mlp.eseal", cwd=workdir).stdout
    assert "signature not checked" in text and "input  x: float32[?, 16]" in text

    edgeseal("run", "mlp.eseal", "--key", "pi.pem", "--trusted", "publisher.pub", "-i", "x.npy", "-o", "y.npz",
             cwd=workdir)
    import onnxruntime as ort

    want = ort.InferenceSession(str(workdir / "mlp.onnx")).run(None, {"x": np.load(workdir / "x.npy")})
    with np.load(workdir / "y.npz") as got:
        np.testing.assert_array_equal(got["logits"], want[0])
        np.testing.assert_array_equal(got["probs"], want[1])
    printed = json.loads(edgeseal("--json", "run", "mlp.eseal", "--key", "pi.pem", "--trusted", "publisher.pub",
                                  "-i", "x.npy", cwd=workdir).stdout)
    assert printed["backend"] == "onnxruntime" and np.allclose(printed["outputs"]["logits"], want[0])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--key", "other.pem", "--trusted", "publisher.pub"], 3, "no key slot of this package is for device key"),
        (["--key", "pi.pem"], 3, "no trusted publisher keys were given"),
        (["--key", "pi.pem", "--trusted", "other.pub"], 2, "other.pub is not a publisher key"),
        (["--key", "pi.pem", "--trusted", "publisher.pub", "--min-version", "4"], 4, "below the minimum version 4"),
        (["--key", "missing.pem", "--trusted", "publisher.pub"], 2, "cannot read key file missing.pem"),
    ],
)
def test_run_failures_exit_codes_and_messages(workdir, args, code, message):
    if not (workdir / "mlp.eseal").exists():
        test_seal_inspect_run_round_trip(workdir)
    proc = edgeseal("run", "mlp.eseal", "-i", "x.npy", *args, cwd=workdir, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_damaged_package_exit_3_with_what_to_check(workdir):
    data = bytearray((workdir / "mlp.eseal").read_bytes() if (workdir / "mlp.eseal").exists() else b"")
    if not data:
        test_seal_inspect_run_round_trip(workdir)
        data = bytearray((workdir / "mlp.eseal").read_bytes())
    data[len(data) // 2] ^= 0x10
    (workdir / "damaged.eseal").write_bytes(bytes(data))
    proc = edgeseal("--json", "run", "damaged.eseal", "--key", "pi.pem", "--trusted", "publisher.pub", "-i", "x.npy",
                    cwd=workdir, check=False)
    assert proc.returncode == 3
    err = json.loads(proc.stdout)
    assert err["error"] == "InvalidPackage" and "damaged or modified" in err["hint"]


def test_bad_inputs_exit_2(workdir):
    if not (workdir / "mlp.eseal").exists():
        test_seal_inspect_run_round_trip(workdir)
    np.save(workdir / "bad.npy", np.zeros((3, 15), np.float32))
    proc = edgeseal("run", "mlp.eseal", "--key", "pi.pem", "--trusted", "publisher.pub", "-i", "bad.npy",
                    cwd=workdir, check=False)
    assert proc.returncode == 2 and "input 'x' has shape (3, 15)" in proc.stderr
    proc = edgeseal("seal", "mlp.onnx", "-o", "x.eseal", "--device", "pi.pub", cwd=workdir, check=False)
    assert proc.returncode == 2 and "--publisher" in proc.stderr


def test_passphrase_from_environment(workdir):
    edgeseal("seal", "mlp.onnx", "-o", "pw.eseal", "--publisher", "publisher.pem", "--passphrase-env", "PKG_PW",
             cwd=workdir, env={"PKG_PW": "open sesame"})
    ok = edgeseal("run", "pw.eseal", "--passphrase-env", "PKG_PW", "--trusted", "publisher.pub", "-i", "x.npy",
                  cwd=workdir, env={"PKG_PW": "open sesame"})
    assert "logits" in ok.stdout
    bad = edgeseal("run", "pw.eseal", "--passphrase-env", "PKG_PW", "--trusted", "publisher.pub", "-i", "x.npy",
                   cwd=workdir, env={"PKG_PW": "wrong"}, check=False)
    assert bad.returncode == 3 and "open sesame" not in bad.stderr + bad.stdout


def test_passphrase_protected_publisher_key(workdir):
    env = {"PUB_PW": "publisher secret"}
    out = json.loads(edgeseal("--json", "keygen", "publisher", "-o", "locked", "--passphrase-env", "PUB_PW",
                              cwd=workdir, env=env).stdout)
    assert out["encrypted"] is True
    assert b"ENCRYPTED PRIVATE KEY" in (workdir / "locked.pem").read_bytes()
    edgeseal("seal", "mlp.onnx", "-o", "locked.eseal", "--publisher", "locked.pem", "--publisher-passphrase-env",
             "PUB_PW", "--device", "pi.pub", cwd=workdir, env=env)
    info = json.loads(edgeseal("--json", "inspect", "locked.eseal", "--trusted", "locked.pub", cwd=workdir).stdout)
    assert info["signature"] == "verified"
    denied = edgeseal("seal", "mlp.onnx", "-o", "x.eseal", "--publisher", "locked.pem", "--device", "pi.pub",
                      cwd=workdir, check=False)
    assert denied.returncode == 2 and "passphrase-protected; give its passphrase" in denied.stderr
    assert "publisher secret" not in denied.stderr


def test_run_prints_sequence_and_map_outputs(workdir):
    from onnx import TensorProto, helper

    scalar = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_strings=["cat", "dog"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_value_info("z", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.STRING, scalar)))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 10
    (workdir / "zipmap.onnx").write_bytes(model.SerializeToString())
    np.save(workdir / "p.npy", np.array([[0.25, 0.75], [1.0, 0.0]], np.float32))
    edgeseal("seal", "zipmap.onnx", "-o", "zipmap.eseal", "--publisher", "publisher.pem", "--device", "pi.pub",
             cwd=workdir)
    run = ["run", "zipmap.eseal", "--key", "pi.pem", "--trusted", "publisher.pub", "-i", "p.npy"]
    printed = json.loads(edgeseal("--json", *run, cwd=workdir).stdout)
    assert printed["outputs"] == {"z": [{"cat": 0.25, "dog": 0.75}, {"cat": 1.0, "dog": 0.0}]}
    assert "z list of 2:" in edgeseal(*run, cwd=workdir).stdout
    to_npz = edgeseal(*run, "-o", "z.npz", cwd=workdir, check=False)
    assert to_npz.returncode == 2 and "outputs ['z'] are sequences, maps or empty optionals" in to_npz.stderr


def _verbs() -> list[str]:
    from edgeseal.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


# One invocation per verb that fails on the user's input before any work: a missing file, a bad name.
FAILING = {
    "keygen": (["keygen", "publisher", "-o", "{tmp}/k", "--passphrase-env", "EDGESEAL_TEST_UNSET_VARIABLE"], 2),
    "seal": (["seal", "{tmp}/missing.onnx", "-o", "{tmp}/m.eseal", "--unsigned"], 2),
    "inspect": (["inspect", "{tmp}/missing.eseal"], 2),
    "run": (["run", "{tmp}/missing.eseal", "--key", "{tmp}/k.pem", "-i", "{tmp}/x.npy"], 2),
    "demo": (["demo", "--epochs", "0", "--workdir", "{tmp}/demo"], 2),
    "compress": (["compress", "--recipe", "{tmp}/missing.toml", "-o", "{tmp}/m.onnx"], 2),
    "verify": (["verify", "{tmp}/missing.eseal", "--device", "local", "--data", "{tmp}/d.npz", "--key", "{tmp}/k.pem",
                "--trusted", "{tmp}/p.pub"], 2),
    "verify-report": (["verify-report", "{tmp}/missing.json", "--trusted", "{tmp}/p.pub"], 2),
    "device": (["device", "remove", "no-such-device"], 2),
    "targets": (["targets", "show", "no-such-board"], 2),
    "audit": (["audit", "--recipe", "{tmp}/missing.toml", "--out", "{tmp}/a"], 2),
    "search": (["search", "--recipe", "{tmp}/missing.toml", "--out", "{tmp}/s"], 2),
    "build": (["build", "{tmp}/missing.toml"], 2),
}


def test_every_verb_is_listed_here():
    assert sorted(FAILING) == _verbs()


@pytest.mark.parametrize("verb", sorted(FAILING))
def test_every_verb_under_json_prints_one_json_document_and_nothing_else(verb, tmp_path, capfd):
    """`--json` on any verb: stdout (the file descriptor, so native libraries' prints count too) holds exactly
    one JSON document, also when the command fails; the exit code is the error's."""
    from edgeseal.cli import main

    args, code = FAILING[verb]
    assert main(["--json", *(a.format(tmp=tmp_path) for a in args)]) == code
    out = capfd.readouterr().out
    doc = json.loads(out)  # raises on a second document or any stray line
    assert doc["ok"] is False and doc["error"] in ("ConfigError", "UsageError", "InvalidInput") and doc["message"]
