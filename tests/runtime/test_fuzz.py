"""Property-based fuzzing of the package reader with Hypothesis (issue 11, part 3).

Random byte mutations of whole packages and structure-aware mutations of manifests,
slots and payload parameters, each re-signed by the test's own trusted publisher so
the parser faces them past the signature check. The property: every outcome is a
typed edgeseal error, or a successful load with the identical plaintext; and every
case stays within a time and a traced-memory bound.

Profiles (env HYPOTHESIS_PROFILE): ``ci`` (default; derandomized, a few hundred cases,
well under a minute) and ``long`` (thousands of cases, on demand). The number of cases
run and of untyped outcomes is printed at the end of the session (tests/runtime/conftest.py)
and, with EDGESEAL_FUZZ_REPORT=path, written there as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import tracemalloc
from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (the dev extra) to run the fuzz tests")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgeseal.runtime import crypto, strictjson  # noqa: E402
from edgeseal.runtime.errors import EdgesealError  # noqa: E402
from edgeseal.runtime.format import (  # noqa: E402
    Codec,
    DeviceRecipient,
    KeySlot,
    Manifest,
    Package,
    PassphraseRecipient,
    RawKeyRecipient,
    write_package,
)
from edgeseal.runtime.tensors import QuantParams, TensorSpec  # noqa: E402

settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=4000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

CASE_SECONDS = 5.0  # per case, generous for a shared CI machine; a hostile case that hangs fails it
CASE_MIB = 64.0  # traced Python allocations per case; the payloads here are a few KiB

STATS: Counter = Counter()

RAW = hashlib.sha256(b"fuzz raw key").digest()
PUBLISHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz publisher").digest())
PUBLISHER_RAW = crypto.raw_public(PUBLISHER.public_key())
DEVICE = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz device").digest())
PAYLOAD = b"".join(b"layer %03d: %s\n" % (i, hashlib.sha256(bytes([i])).hexdigest().encode()) for i in range(60))
PLAIN_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _manifest(**changes) -> Manifest:
    fields = dict(kind="dataset", content_format="bin", name="fuzz", model_version=3, created_at=1_700_000_000,
                  expires_at=4_000_000_000, producer="tests/fuzz", target="rpi4",
                  compression={"pruned": 0.25, "layers": ["a", "b"]}, metadata={"k": "v"},
                  inputs=(TensorSpec(name="x", dtype="int8", shape=(None, 2),  # 2 channels on axis 1: 2 scales
                                     quant=QuantParams(scale=(0.5, 0.25), zero_point=(0, 1), axis=1)),),
                  outputs=(TensorSpec(name="y", dtype="float32", shape=(2,)),))
    fields.update(changes)
    return Manifest(**fields)


def _seal(edit=None, *, recipients=None, codec=Codec.ZLIB, chunk_size=1024, payload=PAYLOAD, signer=PUBLISHER):
    return write_package(payload, _manifest(), recipients or [DeviceRecipient(crypto.raw_public(DEVICE.public_key())),
                                                              RawKeyRecipient(RAW)],
                         signer, codec=codec, chunk_size=chunk_size, _edit_manifest=edit)


BASE = _seal()
BASE_BODY = BASE[: len(BASE) - 97]  # everything before sig_alg, publisher key and signature


def _resign(body: bytes) -> bytes:
    signed = body + b"\x01" + PUBLISHER_RAW
    return signed + crypto.sign(PUBLISHER, signed)


def _open(data: bytes, key, *, allow_unsigned=False) -> str:
    package = Package.parse(data)
    package.authenticate([PUBLISHER_RAW], allow_unsigned=allow_unsigned)
    package.check_policy(now=1_800_000_000)
    package.check_size(2**20)
    plain = package.decrypt(package.content_key(key, scrypt_budget=2**16))
    try:
        return hashlib.sha256(bytes(plain.view)).hexdigest()
    finally:
        plain.wipe()


def check_case(data: bytes, key=RAW, *, allow_unsigned=False, expected=PLAIN_SHA) -> None:
    """The property: a typed error, or the identical plaintext; within the time and memory bound."""
    STATS["cases"] += 1
    tracemalloc.start()
    started = time.perf_counter()
    try:
        digest = _open(data, key, allow_unsigned=allow_unsigned)
    except EdgesealError as exc:
        STATS[f"typed:{type(exc).__name__}"] += 1
    except BaseException:
        STATS["untyped"] += 1
        raise
    else:
        if digest != expected:
            STATS["wrong plaintext"] += 1
            raise AssertionError("a mutated package opened to a different plaintext")
        STATS["identical load"] += 1
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    if elapsed > CASE_SECONDS or peak > CASE_MIB:
        STATS["over bound"] += 1
        raise AssertionError(f"case took {elapsed:.2f} s and {peak:.1f} MiB (bounds {CASE_SECONDS} s, {CASE_MIB} MiB)")


# --- random byte mutations of a whole package, re-signed ---------------------------------------------------

_positions = st.integers(min_value=0, max_value=len(BASE_BODY))
_mutation = st.one_of(
    st.tuples(st.just("flip"), _positions, st.integers(0, 7)),
    st.tuples(st.just("set"), _positions, st.integers(0, 255)),
    st.tuples(st.just("insert"), _positions, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), _positions, st.integers(1, 200)),
    st.tuples(st.just("truncate"), _positions, st.just(0)),
    st.tuples(st.just("duplicate"), _positions, st.integers(1, 200)),
)


def _mutate(body: bytes, ops) -> bytes:
    data = bytearray(body)
    for op, pos, arg in ops:
        pos = min(pos, len(data))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << arg
        elif op == "set" and pos < len(data):
            data[pos] = arg
        elif op == "insert":
            data[pos:pos] = arg
        elif op == "delete":
            del data[pos : pos + arg]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + arg]
    return bytes(data)


@given(ops=st.lists(_mutation, min_size=1, max_size=4), signing=st.sampled_from(["resign", "unsigned", "stale"]),
       key=st.sampled_from(["raw", "device"]))
def test_random_mutations_of_a_package(ops, signing, key):
    body = _mutate(BASE_BODY, ops)
    if signing == "resign":
        data = _resign(body)
    elif signing == "unsigned":
        data = body + b"\x00"
    else:  # the original trailer: the signature no longer matches
        data = body + BASE[len(BASE_BODY):]
    check_case(data, RAW if key == "raw" else DEVICE, allow_unsigned=signing == "unsigned")


# --- structure-aware manifest mutations, sealed and signed --------------------------------------------------

_json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**53, 2**63 - 1, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "\udfff x", "\x1b[31m", "\u202e", "a\x00b", "model", "aes-256-gcm", "zlib", "none",
                     "chacha20-poly1305", "dataset", "float32", "int8", "00000000000000"]),
)
_json_values = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)

_PATHS = [("kind",), ("content_format",), ("name",), ("model_version",), ("inputs",), ("outputs",), ("target",),
          ("compression",), ("metadata",), ("created_at",), ("expires_at",), ("producer",), ("payload",),
          ("payload", "cipher"), ("payload", "chunk_size"), ("payload", "nonce_prefix"), ("payload", "codec"),
          ("payload", "size"), ("payload", "original_size"), ("inputs", 0), ("inputs", 0, "name"),
          ("inputs", 0, "dtype"), ("inputs", 0, "shape"), ("inputs", 0, "shape", 0), ("inputs", 0, "shape", 1),
          ("inputs", 0, "quant"), ("inputs", 0, "quant", "scale"), ("inputs", 0, "quant", "scale", 0),
          ("inputs", 0, "quant", "zero_point", 1), ("inputs", 0, "quant", "axis"), ("metadata", "k"),
          ("outputs", 0, "shape", 0), ("compression", "layers", 1)]
_RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-0", "1E5", "1.0", "0.5e-3", "01", "true", '"\\ud800"',
               '"\\u0000"', "[" * 70 + "]" * 70, "{}", "[]", '"x"', "18446744073709551616", "-9223372036854775809",
               "9223372036854775807"]


@st.composite
def _manifest_edits(draw):
    return draw(st.lists(st.one_of(
        st.tuples(st.just("set"), st.sampled_from(_PATHS), _json_values),
        st.tuples(st.just("delete"), st.sampled_from(_PATHS), st.none()),
        st.tuples(st.just("raw"), st.sampled_from(_PATHS), st.sampled_from(_RAW_TOKENS)),
        st.tuples(st.just("unknown"), st.text(max_size=8), _json_values),
        st.tuples(st.just("duplicate"), st.sampled_from([p[0] for p in _PATHS]), st.none()),
        st.tuples(st.just("textflip"), st.integers(0, 2000), st.integers(0, 255)),
    ), min_size=1, max_size=3))


def _apply_manifest_edits(text: bytes, edits) -> bytes:
    d = json.loads(text)
    raw_tokens: dict[str, str] = {}
    flips, duplicates = [], []
    for op, path, value in edits:
        if op == "unknown":
            d[f"zz_{path}"] = value
            continue
        if op == "textflip":
            flips.append((path, value))
            continue
        if op == "duplicate":
            duplicates.append(path)
            continue
        node = d
        for k in path[:-1]:
            try:
                node = node[k]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if not isinstance(node, (dict, list)):
            continue
        last = path[-1]
        if isinstance(node, list) and (not isinstance(last, int) or last >= len(node)):
            continue
        if isinstance(node, dict) and isinstance(last, int):
            continue
        if op == "delete":
            if isinstance(node, list) or last in node:
                del node[last]
        elif op == "set":
            node[last] = value
        else:  # raw JSON token, spliced into the text below
            marker = f"\u0001RAW{len(raw_tokens)}\u0001"
            raw_tokens[json.dumps(marker)] = value
            node[last] = marker
    out = json.dumps(d, separators=(",", ":"), allow_nan=True, ensure_ascii=False)
    for marker, token in raw_tokens.items():
        out = out.replace(marker, token)
    for member in duplicates:
        out = out.replace('{"', f'{{"{member}":null,"', 1)
    data = bytearray(out.encode("utf-8", "surrogatepass"))
    for pos, byte in flips:
        if data:
            data[pos % len(data)] = byte
    return bytes(data)


@given(edits=_manifest_edits(), codec=st.sampled_from([Codec.NONE, Codec.ZLIB]))
def test_structure_aware_manifest_mutations(edits, codec):
    data = _seal(lambda text: _apply_manifest_edits(text, edits), codec=codec)
    check_case(data)
    try:
        manifest = Package.parse(data).manifest
    except EdgesealError:
        return
    manifest.validate()  # the writer's check accepts every manifest the reader accepts


# --- structure-aware slots and payload parameters ------------------------------------------------------------


class _Slot:
    def __init__(self, slot_type: int, body: bytes) -> None:
        self.slot = KeySlot(slot_type, body)

    def make_slot(self, content_key, aad, randbytes) -> KeySlot:
        return self.slot


_crafted_slot = st.one_of(
    st.builds(lambda t, b: _Slot(t, b), st.integers(0, 255), st.binary(max_size=120)),
    st.builds(lambda salt, n, r, p, w: _Slot(2, salt + bytes([n, r, p]) + w), st.binary(min_size=16, max_size=16),
              st.sampled_from([0, 1, 4, 10, 22, 23, 255]), st.sampled_from([0, 1, 8, 32, 33]),
              st.sampled_from([0, 1, 16, 17]), st.binary(min_size=48, max_size=48)),
    st.builds(lambda fp, rest: _Slot(3, fp + rest), st.sampled_from([crypto.raw_key_fingerprint(RAW), bytes(16)]),
              st.binary(min_size=64, max_size=64)),
)


PASSWORD_SLOT = PassphraseRecipient("fuzz passphrase", log2_n=10)


@given(crafted=st.lists(_crafted_slot, max_size=6), real_at=st.one_of(st.none(), st.integers(0, 6)),
       key=st.sampled_from(["raw", "passphrase"]),
       chunk=st.sampled_from([1024, 1500, 4096, 2**20]), codec=st.sampled_from([Codec.NONE, Codec.ZLIB]),
       payload=st.one_of(st.just(PAYLOAD), st.binary(max_size=3000)))
def test_structure_aware_slots_and_payload(crafted, real_at, key, chunk, codec, payload):
    recipients = list(crafted)
    if real_at is not None:
        recipients.insert(min(real_at, len(recipients)), RawKeyRecipient(RAW) if key == "raw" else PASSWORD_SLOT)
    if not recipients:
        recipients = [RawKeyRecipient(bytes(32))]
    data = _seal(recipients=recipients, chunk_size=chunk, codec=codec, payload=payload)
    check_case(data, RAW if key == "raw" else "fuzz passphrase", expected=hashlib.sha256(payload).hexdigest())


# --- the strict JSON reader on its own ---------------------------------------------------------------------

_json_text = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(['{', '}', '[', ']', ',', ':', '"a"', '"\\ud800"', '"\\u00e9"', "1", "-0", "1e400",
                              "NaN", "true", "null", " ", "0.5", "01", "\\", '"', "9" * 25, "Infinity"]),
             max_size=60).map(lambda parts: "".join(parts).encode()),
    _json_values.map(lambda v: json.dumps({"v": v}, allow_nan=True, ensure_ascii=False).encode("utf-8",
                                                                                                "surrogatepass")),
)


@given(text=_json_text)
def test_strict_json_reader_gives_an_object_or_a_json_error(text):
    STATS["cases"] += 1
    try:
        value = strictjson.loads(text)
    except strictjson.JSONError:
        STATS["typed:JSONError"] += 1
        return
    except BaseException:
        STATS["untyped"] += 1
        raise
    STATS["json accepted"] += 1
    assert isinstance(value, dict)
    strictjson.check_value(value)  # what the reader accepts, the writer's check accepts too
    assert json.loads(json.dumps(value)) == value  # and it round-trips through standard JSON


def test_the_base_package_opens():
    """The fuzz base is a valid package: without this every case could be a trivial rejection."""
    assert _open(BASE, RAW) == _open(BASE, DEVICE) == PLAIN_SHA
    assert struct.unpack(">I", BASE[12:16])[0] > 100


def _reference_depth(text: bytes) -> int:
    """Character-by-character nesting depth of valid JSON (strings skipped), for checking the vectorised scan."""
    depth = deepest = 0
    inside = escaped = False
    for ch in text:
        if inside:
            escaped, inside = (False, True) if escaped else (ch == 0x5C, ch != 0x22)
        elif ch == 0x22:
            inside = True
        elif ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in b"]}":
            depth -= 1
    return deepest


@given(value=_json_values, chunk=st.sampled_from([1, 2, 3, 7, 64, 2**18]),
       noise=st.text(alphabet='\\"[]{}', max_size=12))
def test_nesting_scan_matches_a_reference_across_chunk_boundaries(value, chunk, noise):
    STATS["cases"] += 1
    text = json.dumps({"v": value, "s": noise}, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    saved, strictjson._SCAN_CHUNK = strictjson._SCAN_CHUNK, chunk
    try:
        assert strictjson.nesting_depth(text) == _reference_depth(text)
    finally:
        strictjson._SCAN_CHUNK = saved
    STATS["scan agrees"] += 1


def test_readme_states_the_recorded_ci_figure():
    """The README's CI figure is the one recorded in bench/results/fuzz_ci.json by a run of this module."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    recorded = json.loads((root / "bench" / "results" / "fuzz_ci.json").read_text())
    given_tests = [f for name, f in globals().items() if name.startswith("test_") and hasattr(f, "hypothesis")]
    assert recorded["profile"] == "ci" and recorded["untyped"] == 0
    assert recorded["cases"] == settings.get_profile("ci").max_examples * len(given_tests)
    stated = re.search(r"CI profile: \*\*([\d ]+) cases, (\d+) untyped outcomes\*\*", (root / "README.md").read_text())
    assert stated and int(stated.group(1).replace(" ", "")) == recorded["cases"]
    assert int(stated.group(2)) == recorded["untyped"]
    long = json.loads((root / "bench" / "results" / "fuzz_long.json").read_text())
    assert long["profile"] == "long" and long["untyped"] == 0
    assert long["cases"] == settings.get_profile("long").max_examples * len(given_tests)
    stated = re.search(r"HYPOTHESIS_PROFILE=long`: \*\*([\d ]+) cases, (\d+) untyped", (root / "README.md").read_text())
    assert stated and (int(stated.group(1).replace(" ", "")), int(stated.group(2))) == (long["cases"], 0)
