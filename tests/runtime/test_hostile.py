"""Issue 11, part 2: every row of the security review's table, one test each.

Each hostile package is signed by the test's own trusted publisher (through
``write_package(..., _edit_manifest=...)``, which rewrites the manifest bytes before
they are bound and signed), so the parser really faces it instead of stopping at
the signature. Every test asserts the typed error and a bound on time or memory.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import edgeseal
from edgeseal.cli import app as cli
from edgeseal.runtime import errors, keys
from edgeseal.runtime.format import (
    Codec,
    KeySlot,
    Manifest,
    Package,
    RawKeyRecipient,
    SlotType,
    write_package,
)
from edgeseal.runtime.loader import SealedModel
from edgeseal.runtime.tensors import QuantParams, TensorSpec

RAW = bytes(range(32))
PUBLISHER = Ed25519PrivateKey.from_private_bytes(bytes(32))
PAYLOAD = b"weights " * 400


def _manifest(**changes) -> Manifest:
    fields = dict(kind="dataset", content_format="bin", name="hostile", created_at=1_700_000_000, producer="tests",
                  inputs=(TensorSpec(name="x", dtype="int8", shape=(None, 4),
                                     quant=QuantParams(scale=(0.5,), zero_point=(0,), axis=None)),))
    fields.update(changes)
    return Manifest(**fields)


def _seal(edit=None, *, payload=PAYLOAD, codec=Codec.NONE, recipients=None, signer=PUBLISHER, **manifest) -> bytes:
    """A package signed by PUBLISHER whose manifest text went through ``edit(dict) -> str`` after validation."""
    def rewrite(data: bytes) -> bytes:
        return edit(json.loads(data)).encode("utf-8", "surrogatepass")

    return write_package(payload, _manifest(**manifest), recipients or [RawKeyRecipient(RAW)], signer, codec=codec,
                         chunk_size=1024, _edit_manifest=None if edit is None else rewrite)


def _open(data: bytes, **options):
    return edgeseal.open_payload(data, key=edgeseal.RawKey(RAW), trusted=[PUBLISHER.public_key()], **options)


def _dump(d) -> str:
    return json.dumps(d, separators=(",", ":"))


def _replace(path: str, text: str):
    """An edit that puts raw JSON ``text`` at a dotted ``path`` of the manifest (no re-serialisation of it)."""
    marker = "\u0000MARK\u0000"

    def edit(d):
        node = d
        keys_ = path.split(".")
        for k in keys_[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys_[-1]
        if isinstance(node, list):
            node[int(last)] = marker
        else:
            node[last] = marker
        return _dump(d).replace(json.dumps(marker), text)

    return edit


def _bounded(fn, *, seconds: float, mib: float):
    """Run ``fn``; return (exception or None, elapsed, peak traced MiB) and assert the bounds."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    try:
        fn()
        outcome = None
    except Exception as exc:  # noqa: BLE001 - the caller asserts the type
        outcome = exc
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < mib, f"peak {peak:.1f} MiB traced"
    return outcome


# --- row 1: deep nesting ----------------------------------------------------------------------------------


def test_manifest_nested_100k_levels_is_invalid_package_quickly(tmp_path, capsys):
    deep = "[" * 100_000 + "]" * 100_000
    package = _seal(_replace("compression", '{"x":' + deep + "}"))
    err = _bounded(lambda: _open(package), seconds=5, mib=64)
    assert type(err) is errors.InvalidPackage
    path = tmp_path / "deep.eseal"
    path.write_bytes(package)
    assert cli.main(["inspect", str(path)]) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "sealed package is invalid" in captured.err


@pytest.mark.parametrize("filler", ["1,", "{},", '"",', "[],"])
def test_a_4_mib_manifest_of_tiny_values_parses_in_linear_time(filler):
    """The most objects per manifest byte the format allows: a few seconds at most, never a blow-up."""
    count = (4 * 2**20 - 1200) // len(filler)

    def edit(d):
        d["compression"] = {"m": "@"}
        return _dump(d).replace('"@"', "[" + filler * count + "1]")

    package = _seal(edit)
    started = time.perf_counter()
    manifest, plain = _open(package)
    assert len(manifest.compression["m"]) == count + 1
    assert time.perf_counter() - started < 20  # ~2 s on the shared 2-core CI machine


@pytest.mark.parametrize("levels,ok", [(63, True), (64, False)])
def test_nesting_limit_is_exactly_64_levels(levels, ok):
    """The manifest object is level 1; compression adds one; 62 or 63 more arrays make 64 or 65 levels."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    package = _seal(_replace("compression", '{"x":' + inner + "}"))
    if ok:
        assert _open(package)[0].compression["x"] is not None
    else:
        with pytest.raises(errors.InvalidPackage):
            _open(package)


# --- row 2: Infinity / 1e400 ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["inputs.0.shape.1", "inputs.0.quant.zero_point.0", "inputs.0.quant.axis",
                                  "inputs.0.quant.scale.0", "compression"])
@pytest.mark.parametrize("text", ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"])
def test_non_finite_numbers_are_invalid_package(path, text):
    err = _bounded(lambda: _open(_seal(_replace(path, text))), seconds=5, mib=32)
    assert type(err) is errors.InvalidPackage


# --- row 3: decompression bomb -------------------------------------------------------------------------


def test_claimed_16_gib_plaintext_is_refused_before_any_allocation():
    package = _seal(_replace("payload.original_size", str(16 * 2**30)), codec=Codec.ZLIB)
    err = _bounded(lambda: _open(package), seconds=2, mib=8)
    assert type(err) is errors.LimitExceeded and "max_plaintext" in str(err)
    assert isinstance(err, errors.UnsupportedError) and err.exit_code == 2


def test_a_stream_inflating_past_its_claimed_size_stops_at_the_claim():
    """Unsigned and allowed: a 64 MiB zero stream that claims 1 MiB inflates at most 1 MiB + 64 KiB."""
    bomb = bytes(64 * 2**20)
    package = _seal(_replace("payload.original_size", str(2**20)), payload=bomb, codec=Codec.ZLIB, signer=None)
    del bomb
    assert len(package) < 2**20
    err = _bounded(lambda: edgeseal.open_payload(package, key=edgeseal.RawKey(RAW), allow_unsigned=True),
                   seconds=5, mib=4)
    assert type(err) is errors.InvalidPackage


def test_max_plaintext_is_a_cap_the_caller_can_raise(tmp_path):
    payload = os.urandom(3000) * 100  # 300 kB, compresses well
    package = _seal(payload=payload, codec=Codec.ZLIB)
    with pytest.raises(errors.LimitExceeded, match="max_plaintext"):
        _open(package, max_plaintext=len(payload) - 1)
    manifest, plain = _open(package, max_plaintext=len(payload))
    assert bytes(plain.view) == payload
    # a file larger than any package within the cap is refused unread
    path = tmp_path / "big.eseal"
    path.write_bytes(package)
    with pytest.raises(errors.LimitExceeded, match="max_plaintext"):
        edgeseal.open_payload(path, key=edgeseal.RawKey(RAW), trusted=[PUBLISHER.public_key()], max_plaintext=0)


# --- row 4: scrypt work --------------------------------------------------------------------------------


class _CraftedPassphraseSlot:
    """A passphrase slot with chosen scrypt parameters and a wrapped key that never unwraps."""

    def __init__(self, log2_n: int, r: int, p: int) -> None:
        self.params = bytes([log2_n, r, p])

    def make_slot(self, content_key, aad, randbytes) -> KeySlot:
        return KeySlot(SlotType.PASSPHRASE, randbytes(16) + self.params + randbytes(48))


def test_1024_slots_at_the_maximum_scrypt_cost_are_refused_without_running_scrypt():
    package = _seal(recipients=[_CraftedPassphraseSlot(22, 2, 16)] * 1024)  # 2**22 * 2 * 16 = 2**27 each
    err = _bounded(lambda: _open_pass(package), seconds=3, mib=32)
    assert type(err) is errors.LimitExceeded and "scrypt_budget" in str(err)


def _open_pass(package: bytes, **options):
    return edgeseal.open_payload(package, key=edgeseal.Passphrase("guess"), trusted=[PUBLISHER.public_key()],
                                 **options)


def test_scrypt_work_is_summed_over_slots_and_the_budget_can_be_raised():
    """16 cheap slots (N=2**10, r=8: 8192 each); a budget of 4 slots stops after 4 tries."""
    package = _seal(recipients=[_CraftedPassphraseSlot(10, 8, 1)] * 16)
    started = time.perf_counter()
    with pytest.raises(errors.LimitExceeded, match="slot 5 of 16"):
        _open_pass(package, scrypt_budget=4 * 8192)
    assert time.perf_counter() - started < 2
    with pytest.raises(errors.InvalidPackage) as err:  # enough budget: all 16 tried, none unwraps
        _open_pass(package, scrypt_budget=16 * 8192)
    assert type(err.value) is errors.InvalidPackage


def test_a_real_passphrase_slot_within_budget_opens():
    from edgeseal.runtime.format import PassphraseRecipient

    package = _seal(recipients=[_CraftedPassphraseSlot(10, 8, 1), PassphraseRecipient("right", log2_n=10)])
    manifest, plain = edgeseal.open_payload(package, key=edgeseal.Passphrase("right"),
                                            trusted=[PUBLISHER.public_key()], scrypt_budget=2 * 8192)
    assert bytes(plain.view) == PAYLOAD


def test_slots_beyond_the_format_memory_bound_never_run_scrypt():
    """128 * r * N above 1 GiB: the slot cannot unwrap; no scrypt runs and no budget is spent."""
    package = _seal(recipients=[_CraftedPassphraseSlot(22, 32, 1)] * 1024)
    err = _bounded(lambda: _open_pass(package, scrypt_budget=0), seconds=3, mib=32)
    assert type(err) is errors.InvalidPackage


# --- row 5: members missing or of the wrong type --------------------------------------------------------


def _drop(*path: str):
    def edit(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
        return _dump(d)

    return edit


MEMBERS = ["kind", "content_format", "name", "model_version", "inputs", "outputs", "target", "compression",
           "metadata", "created_at", "expires_at", "producer", "payload"]
PAYLOAD_MEMBERS = ["cipher", "chunk_size", "nonce_prefix", "codec", "size", "original_size"]


@pytest.mark.parametrize("member", MEMBERS)
def test_every_manifest_member_is_required(member):
    with pytest.raises(errors.InvalidPackage) as err:
        _open(_seal(_drop(member)))
    assert type(err.value) is errors.InvalidPackage


@pytest.mark.parametrize("member", PAYLOAD_MEMBERS)
def test_every_payload_member_is_required(member):
    with pytest.raises(errors.InvalidPackage):
        _open(_seal(_drop("payload", member)))


@pytest.mark.parametrize("path,text", [
    ("inputs.0.shape.1", "4.7"), ("inputs.0.shape.1", "true"), ("inputs.0.shape.1", str(2**70)),
    ("inputs.0.shape.1", "-1"), ("inputs.0.shape", '"4"'), ("inputs.0.quant.scale.0", '"0.5"'),
    ("inputs.0.quant.zero_point.0", "0.5"), ("inputs.0.quant.axis", "true"), ("inputs.0.name", "7"),
    ("model_version", "true"), ("model_version", "1.0"), ("model_version", "1e0"), ("model_version", "-1"),
    ("model_version", str(2**63)), ("created_at", '"1700000000"'), ("expires_at", "false"),
    ("expires_at", "1"), ("target", "3"), ("name", "null"), ("producer", "[]"), ("kind", '"weights"'),
    ("metadata", '{"a":1}'), ("metadata", "[]"), ("compression", "null"), ("inputs", "{}"), ("payload", "[]"),
    ("payload.chunk_size", "1024.0"), ("payload.size", "true"), ("payload.cipher", '"AES-256-GCM"'),
    ("payload.nonce_prefix", '"00000000000000000"'), ("payload.codec", '"gzip"'),
    ("compression", '{"a":1,"a":2}'), ("name", '"\\ud800"'),
])
def test_malformed_members_are_invalid_package(path, text):
    err = _bounded(lambda: _open(_seal(_replace(path, text))), seconds=5, mib=32)
    assert type(err) is errors.InvalidPackage, (path, text, err)


def test_unknown_members_are_ignored():
    def edit(d):
        d["future_member"] = {"anything": [1, 2.5, None]}
        return _dump(d)

    manifest, plain = _open(_seal(edit))
    assert bytes(plain.view) == PAYLOAD


# --- row 6: seal refuses what load would refuse --------------------------------------------------------


@pytest.mark.parametrize("options,member", [
    (dict(version=2**63), "model_version"),
    (dict(expires=2**64), "expires_at"),
    (dict(metadata={"a": float("nan")}), "metadata.a"),
    (dict(metadata={"a": 1}), "metadata.a"),
    (dict(name="lone \ud800 surrogate"), "name"),
    (dict(compression_summary={"ratio": float("inf")}), "compression.ratio"),
    (dict(compression_summary={"big": 2**64}), "compression.big"),
])
def test_seal_refuses_what_load_refuses(options, member):
    with pytest.raises(errors.ConfigError) as err:
        edgeseal.seal(PAYLOAD, publisher=PUBLISHER, raw_keys=[RAW], content_format="bin", **options)
    assert f"'{member}'" in str(err.value)


def test_seal_refuses_a_manifest_nested_too_deep():
    deep: object = 1
    for _ in range(80):
        deep = [deep]
    with pytest.raises(errors.ConfigError, match="nested more than 64"):
        edgeseal.seal(PAYLOAD, publisher=PUBLISHER, raw_keys=[RAW], content_format="bin",
                      compression_summary={"x": deep})


# --- row 7: key text in messages -----------------------------------------------------------------------


def _message_of(fn) -> str:
    with pytest.raises(errors.ConfigError) as err:
        fn()
    return str(err.value)


def test_key_text_passed_as_str_never_appears_in_a_message(tmp_path):
    device = edgeseal.generate_device_key()
    pem = keys.private_pem(device).decode()
    pub = keys.public_pem(PUBLISHER.public_key()).decode()
    raw_text = "base64:" + base64.b64encode(RAW).decode()
    package = _seal()
    secrets = {
        "key=pem": (lambda: edgeseal.load(package, key=pem), pem),
        "key=base64": (lambda: edgeseal.load(package, key=raw_text), raw_text),
        "key=bare base64": (lambda: edgeseal.load(package, key=raw_text[7:]), raw_text[7:]),
        "key=passphrase": (lambda: edgeseal.load(package, key="correct horse battery staple"),
                           "correct horse battery staple"),
        "trusted=[pub]": (lambda: edgeseal.load(package, key=device, trusted=[pub]), pub),
        "trusted=pub": (lambda: edgeseal.load(package, key=device, trusted=pub), pub),
        "seal publisher=pem": (lambda: edgeseal.seal(PAYLOAD, publisher=keys.private_pem(PUBLISHER).decode(),
                                                     raw_keys=[RAW], content_format="bin"),
                               keys.private_pem(PUBLISHER).decode()),
        "seal devices=[pub]": (lambda: edgeseal.seal(PAYLOAD, publisher=PUBLISHER, content_format="bin",
                                                     devices=[keys.public_pem(device.public_key()).decode()]),
                               keys.public_pem(device.public_key()).decode()),
    }
    for label, (fn, secret) in secrets.items():
        message = _message_of(fn)
        body = "".join(line for line in secret.strip().splitlines() if "-----" not in line)
        for piece in (secret.strip(), body[:16], body[-16:]):
            assert piece not in message, (label, message)
    # an ordinary path is still named
    assert "keys/missing.pem" in _message_of(lambda: edgeseal.load(package, key="keys/missing.pem"))


# --- row 8: inspect --trusted exit code ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["verified", "untrusted", "invalid", "unsigned"])
def test_inspect_with_trusted_exits_3_unless_verified(case, tmp_path, capsys):
    other = Ed25519PrivateKey.generate()
    package = _seal(signer=None if case == "unsigned" else other if case == "untrusted" else PUBLISHER)
    if case == "invalid":  # flip the signature's last byte (in v2 the signature is not at the end of the file)
        end = Package.parse(package).signature.signed_len + 64
        package = package[: end - 1] + bytes([package[end - 1] ^ 1]) + package[end:]
    path, pub = tmp_path / "p.eseal", tmp_path / "publisher.pub"
    path.write_bytes(package)
    keys.write_public_key(pub, PUBLISHER.public_key())
    code = cli.main(["inspect", str(path), "--trusted", str(pub)])
    out = capsys.readouterr()
    assert f"signature {case}" in out.out
    assert code == (0 if case == "verified" else 3)
    assert ("signature check failed" in out.err) is (case != "verified")
    assert cli.main(["inspect", str(path)]) == 0  # without --trusted it only reports


# --- row 9: CLI failures are one clear line, never a traceback -----------------------------------------


@pytest.fixture()
def sealed_onnx_files(tmp_path, onnx_model):
    device = edgeseal.generate_device_key()
    (tmp_path / "model.eseal").write_bytes(edgeseal.seal(onnx_model, publisher=PUBLISHER, devices=[device],
                                                         name="m\x1b[31mred"))
    keys.write_private_key(tmp_path / "device.pem", device)
    keys.write_public_key(tmp_path / "publisher.pub", PUBLISHER.public_key())
    return tmp_path


def _cli_run(files: Path, *inputs: str) -> list[str]:
    args = ["run", str(files / "model.eseal"), "--key", str(files / "device.pem"), "--trusted",
            str(files / "publisher.pub")]
    for i in inputs:
        args += ["-i", i]
    return args


@pytest.mark.parametrize("make", ["missing.npz", "garbage.npz", "garbage.npy", "truncated.npz", "directory.npy"])
def test_run_with_bad_input_files_is_a_clear_error(sealed_onnx_files, capsys, make):
    path = sealed_onnx_files / make
    if make.startswith("garbage"):
        path.write_bytes(b"PK\x03\x04 definitely not a zip" if make.endswith("npz") else b"\x93NUMPY garbage")
    elif make.startswith("truncated"):
        np.savez(path, x=np.zeros((5, 16), np.float32))
        path.write_bytes(path.read_bytes()[:-40])
    elif make.startswith("directory"):
        path.mkdir()
    code = cli.main(_cli_run(sealed_onnx_files, str(path)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "input" in err and make in err


def test_created_at_at_the_int64_limit_is_shown(tmp_path, capsys):
    path = tmp_path / "late.eseal"
    path.write_bytes(_seal(created_at=2**63 - 1))
    assert cli.main(["inspect", str(path)]) == 0
    assert str(2**63 - 1) in capsys.readouterr().out


def test_a_bug_is_one_line_and_exit_70(tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.eseal"
    path.write_bytes(_seal())

    def broken(*args, **kwargs):
        raise KeyError("simulated bug")

    monkeypatch.setattr("edgeseal.runtime.inspect", broken)
    assert cli.main(["inspect", str(path)]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "simulated bug" in err


def test_piping_into_head_is_quiet(tmp_path):
    """Output larger than a pipe buffer, its reader gone after one line: no traceback, exit 141."""
    specs = tuple(TensorSpec(name=f"input_{i}", dtype="float32", shape=(1, 3, 224, 224)) for i in range(4000))
    path = tmp_path / "wide.eseal"
    path.write_bytes(_seal(inputs=specs))
    script = (f"import sys; from edgeseal.cli import main; sys.exit(main(['inspect', {str(path)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert first.startswith(str(path).encode()) and err == ""


def test_device_cli_bug_is_one_json_object(monkeypatch, capsys):
    from edgeseal.runtime import __main__ as device_cli

    def broken(args):
        raise ZeroDivisionError("simulated")

    parser = device_cli.build_parser()
    monkeypatch.setattr(device_cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(func=broken)
    assert device_cli.main(["info"]) == 70
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "InternalError" and "ZeroDivisionError" in out["message"]


# --- row 10: terminal escapes --------------------------------------------------------------------------


def test_inspect_and_run_escape_terminal_controls(sealed_onnx_files, capsys):
    code = cli.main(["inspect", str(sealed_onnx_files / "model.eseal")])
    out = capsys.readouterr().out
    assert code == 0 and "\x1b" not in out and "\\x1b[31mred" in out
    np.save(sealed_onnx_files / "x.npy", np.zeros((2, 16), np.float32))
    args = _cli_run(sealed_onnx_files, str(sealed_onnx_files / "x.npy")) + ["-o", str(sealed_onnx_files / "y.npz")]
    code = cli.main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "\x1b" not in out.out + out.err and "ran m\\x1b[31mred on" in out.out


def test_safe_escapes_controls_and_bidi_but_keeps_text():
    assert cli._safe("ok \x1b]0;title\x07 \u202eevil\u202c é 模型") == "ok \\x1b]0;title\\x07 \\u202eevil\\u202c é 模型"


# --- row 11: run while another thread closes ----------------------------------------------------------


class _SlowSession:
    """A backend session whose run blocks until released: shows close() waits for runs in flight."""

    inputs = outputs = (TensorSpec(name="x", dtype="float32", shape=(1,)),)

    def __init__(self) -> None:
        self.entered, self.release, self.closed = threading.Event(), threading.Event(), False

    def run(self, feeds):
        self.entered.set()
        self.release.wait(5)
        assert not self.closed, "session closed under a running call"
        return {"x": feeds["x"]}

    def close(self):
        self.closed = True


def test_close_waits_for_runs_in_flight_and_later_runs_get_model_closed():
    session = _SlowSession()
    model = SealedModel(_manifest(inputs=()), session, "fake", None, 0.0, None)
    x = np.zeros(1, np.float32)
    results: list = []
    runner = threading.Thread(target=lambda: results.append(model.run(x)))
    runner.start()
    assert session.entered.wait(5)
    closer = threading.Thread(target=model.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive() and not session.closed  # waiting for the run in flight
    with pytest.raises(errors.ModelClosed, match="is closed"):
        model.run(x)  # new runs are refused at once, while close is pending
    session.release.set()
    runner.join(5)
    closer.join(5)
    assert session.closed and np.array_equal(results[0]["x"], x)
    model.close()  # idempotent


def test_many_threads_racing_close_see_only_results_or_model_closed(sealed_onnx, publisher, device, x16):
    """close() lands while 8 threads are running: each sees only correct results, then ModelClosed."""
    model = edgeseal.load(sealed_onnx, key=device, trusted=[publisher])
    expected = model.run(x16)
    ok = [0] * 8
    closed = [False] * 8
    ran_once = threading.Barrier(9)  # close only once every worker has run at least once
    deadline = time.monotonic() + 60

    def worker(i: int) -> None:
        first = True
        while time.monotonic() < deadline:  # bounded: a close() that never lands fails the test below
            try:
                out = model.run(x16)
            except errors.ModelClosed:
                closed[i] = True
                return
            assert all(np.array_equal(out[k], v) for k, v in expected.items())
            ok[i] += 1
            if first:
                first = False
                ran_once.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    ran_once.wait()
    model.close()
    for t in threads:
        t.join(60)
    assert all(closed), closed
    assert min(ok) >= 1
