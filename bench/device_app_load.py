"""Load test of the device app (examples/device-app): concurrent clients on loopback, bounded in count and time.

    .venv/bin/python bench/device_app_load.py            # writes bench/results/device_app_load.{json,md}
    .venv/bin/python bench/device_app_load.py --quick    # 2,000 requests, for a smoke run

Host side (this process): build the sealed int8 digits model (examples/device-app/build_model.py) and
compute the predictions the runtime gives for every test image. Device side (a separate process that
imports only the runtime): ``digits_service.py`` on 127.0.0.1, an ephemeral port. ``clients`` threads,
each with its own keep-alive connection, send the test images one request each until
``max_requests`` are done or ``max_seconds`` have passed, whichever comes first; the run stops by itself.

Counted: requests served, errors (transport failures, non-200 replies, a wrong number of answers),
predictions that differ from the host runtime's, accuracy against the labels, latency p50/p95/p99/max
(client side: send to full reply), and the service's resident memory (``/proc/PID/status`` VmRSS)
before the load (after a warm-up), after each of ``rounds`` equal rounds, and after the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import importlib.util
import json
import os
import platform
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "device-app"
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "bench" / ".cache" / "device-app"


def load_module(path: Path, name: str) -> Any:
    """Import a script by path (examples/device-app is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """Bounds of one load run: it ends at ``max_requests`` or ``max_seconds``, whichever comes first."""

    clients: int = 8
    max_requests: int = 50_000
    max_seconds: float = 60.0
    rounds: int = 5
    warmup: int = 200
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        from edgeseal.runtime.errors import ConfigError

        if not 1 <= self.clients <= 256:
            raise ConfigError(f"clients={self.clients} must be within 1..256")
        if self.max_requests < self.rounds or self.rounds < 1:
            raise ConfigError(f"max_requests={self.max_requests} must be >= rounds={self.rounds} >= 1")
        if not self.max_seconds > 0 or not self.timeout_s > 0:
            raise ConfigError("max_seconds and timeout_s must be > 0")
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup} must be >= 0")


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Service:
    """The device app in its own process; ``with Service(...) as s: s.url``; stops it on exit."""

    def __init__(self, model_dir: Path, *, python: str = sys.executable, threads: int = 1,
                 start_timeout_s: float = 120.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.cmd = [python, str(APP / "digits_service.py"), "--model", str(model_dir / "digits.eseal"),
                    "--key", str(model_dir / "device.pem"), "--trusted", str(model_dir / "publisher.pub"),
                    "--port", "0", "--threads", str(threads)]
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.port = 0
        self.returncode: int | None = None
        self.stdout_tail = ""

    def __enter__(self) -> "Service":
        env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], self.start_timeout_s)
        if not ready:  # bounded: a service that never comes up must not hang the run
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"service printed nothing within {self.start_timeout_s} s: {' '.join(self.cmd)}")
        line = self.proc.stdout.readline()  # "listening on http://127.0.0.1:PORT ..." or EOF on failure
        if not line.startswith("listening on "):
            self.proc.wait(timeout=30)
            raise RuntimeError(f"service did not start (exit {self.proc.returncode}): {line}{self.proc.stderr.read()}")
        self.url = line.split()[2]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        if self.returncode is None and self.proc is not None:
            self.proc.terminate()
            try:
                out, _ = self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate()
            self.stdout_tail = out.strip()
            self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def run_load(port: int, pid: int, images: np.ndarray, expected: np.ndarray, labels: np.ndarray,
             config: LoadConfig, *, on_round: Callable[[int, int], None] | None = None) -> dict:
    """Drive the service with ``config.clients`` keep-alive clients; returns counts, latencies and RSS."""
    bodies = [json.dumps({"image": img.tolist()}).encode() for img in images]
    headers = {"Content-Type": "application/json"}

    def one_client(next_index: Callable[[], int | None], record: Callable) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=config.timeout_s)
        try:
            while (i := next_index()) is not None:
                k = i % len(bodies)
                started = time.perf_counter()
                try:
                    conn.request("POST", "/predict", body=bodies[k], headers=headers)
                    reply = conn.getresponse()
                    doc = json.loads(reply.read())
                    seconds = time.perf_counter() - started
                    ok = reply.status == 200 and len(doc.get("digits", ())) == 1
                    record(k, seconds, doc["digits"][0] if ok else None, None if ok else f"HTTP {reply.status}")
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    record(k, time.perf_counter() - started, None, type(exc).__name__)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=config.timeout_s)
        finally:
            conn.close()

    def drive(count: int, deadline: float, store: bool) -> dict:
        lock = threading.Lock()
        issued = [0]
        got = {"latency": [], "index": [], "digit": [], "errors": []}

        def next_index() -> int | None:
            with lock:
                if issued[0] >= count or time.perf_counter() >= deadline:
                    return None
                issued[0] += 1
                return drive.offset + issued[0] - 1

        def record(k: int, seconds: float, digit: int | None, error: str | None) -> None:
            with lock:
                if error is not None:
                    got["errors"].append(error)
                elif store:
                    got["latency"].append(seconds)
                    got["index"].append(k)
                    got["digit"].append(digit)

        threads = [threading.Thread(target=one_client, args=(next_index, record)) for _ in range(config.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        drive.offset += issued[0]
        return got

    drive.offset = 0
    drive(config.warmup, time.perf_counter() + config.max_seconds, store=False)
    rss_before = rss_of(pid)
    started = time.perf_counter()
    deadline = started + config.max_seconds
    per_round = config.max_requests // config.rounds
    latency, index, digit, errors, rounds = [], [], [], [], []
    for r in range(config.rounds):
        if time.perf_counter() >= deadline:
            break
        want = per_round if r < config.rounds - 1 else config.max_requests - per_round * (config.rounds - 1)
        got = drive(want, deadline, store=True)
        latency += got["latency"]
        index += got["index"]
        digit += got["digit"]
        errors += got["errors"]
        rounds.append({"requests": len(got["latency"]) + len(got["errors"]), "rss_bytes": rss_of(pid)})
        if on_round is not None:
            on_round(r, rounds[-1]["requests"])
    duration = time.perf_counter() - started
    rss_after = rss_of(pid)
    index_arr, digit_arr = np.asarray(index, dtype=np.int64), np.asarray(digit, dtype=np.int64)
    ms = np.asarray(latency) * 1000
    attempted = len(latency) + len(errors)
    return {
        "config": dataclasses.asdict(config),
        "stopped_by": "requests" if attempted >= config.max_requests else "time",
        "duration_s": round(duration, 2),
        "requests_attempted": attempted,
        "requests_served": len(latency),
        "errors": len(errors),
        "error_kinds": {e: errors.count(e) for e in sorted(set(errors))},
        "throughput_rps": round(len(latency) / duration, 1) if duration > 0 else 0.0,
        "predictions_differing_from_host_runtime": int((digit_arr != expected[index_arr]).sum()),
        "accuracy_vs_labels": round(float((digit_arr == labels[index_arr]).mean()), 4) if len(index) else 0.0,
        "latency_ms": {q: round(float(np.percentile(ms, p)), 3) if len(ms) else None
                       for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "rss": {
            "before_bytes": rss_before,
            "after_bytes": rss_after,
            "growth_bytes": rss_after - rss_before,
            "after_each_round_bytes": [r["rss_bytes"] for r in rounds],
            "requests_each_round": [r["requests"] for r in rounds],
        },
    }


def host_predictions(model_dir: Path, images: np.ndarray) -> np.ndarray:
    """What the runtime answers for each image, one at a time, as the service computes it."""
    from edgeseal.runtime import load

    with load(model_dir / "digits.eseal", key=model_dir / "device.pem", trusted=[model_dir / "publisher.pub"],
              threads=1) as model:
        name = model.inputs[0].name
        x = (images.astype(np.float32) / 16.0)[:, None, :, :]
        return np.array([int(next(iter(model.run({name: x[i : i + 1]}).values())).argmax()) for i in range(len(x))])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 requests (smoke run)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rebuild", action="store_true", help="retrain and reseal the model (else reuse bench/.cache)")
    args = ap.parse_args()
    config = LoadConfig(clients=args.clients, max_requests=2_000 if args.quick else args.requests,
                        max_seconds=args.seconds, rounds=args.rounds)
    build = load_module(APP / "build_model.py", "device_app_build")
    if args.rebuild or not (CACHE / "build.json").exists():
        build.build(CACHE)
    built = json.loads((CACHE / "build.json").read_text())
    test = np.load(CACHE / "digits_test.npz")
    images, labels = test["images"], test["labels"]
    expected = host_predictions(CACHE, images)

    from rich.progress import Progress

    load_before = os.getloadavg()
    with Service(CACHE) as service, Progress(transient=True) as progress:
        health_before = get_json(service.port, "/health")
        task = progress.add_task(f"{config.clients} clients → {service.url}", total=config.max_requests)
        result = run_load(service.port, service.pid, images, expected, labels, config,
                          on_round=lambda r, n: progress.advance(task, n))
        health_after = get_json(service.port, "/health")
        exit_code = service.stop()
    import onnxruntime

    report = {
        "what": "examples/device-app digits service under concurrent load on loopback",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    # other work on the machine shares its cores: the 1-minute load average around the run
                    "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        "model": {k: built[k] for k in ("int8_bytes", "package_bytes", "int8_test_accuracy", "test_images")},
        "service": {"backend": health_before["backend"], "torch_loaded": health_after["torch_loaded"],
                    "heavy_modules_loaded": health_after["heavy_modules_loaded"],
                    "third_party_modules": health_after["third_party_modules"],
                    "rss_at_startup_bytes": health_before["rss_bytes"], "peak_rss_bytes": health_after["peak_rss_bytes"],
                    "served_by_its_own_count": health_after["requests_served"], "exit_code": exit_code},
        "load": result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "device_app_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "device_app_load.md").write_text(render(report))
    print(render(report))
    ok = result["errors"] == 0 and result["predictions_differing_from_host_runtime"] == 0 and exit_code == 0
    return 0 if ok else 1


def render(r: dict) -> str:
    load, s, m = r["load"], r["service"], r["machine"]
    rss = load["rss"]
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    lat = load["latency_ms"]
    c = load["config"]
    lines = [
        "# Device app under load (bench/device_app_load.py)", "",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, onnxruntime {m['onnxruntime']}; "
        f"1-min load average {m['load_average_1min_before_after'][0]} before, "
        f"{m['load_average_1min_before_after'][1]} after (clients and service share these cores). "
        f"Service: `examples/device-app/digits_service.py`, backend {s['backend']}, torch loaded: "
        f"**{s['torch_loaded']}** (third-party packages loaded: {', '.join(s['third_party_modules'])}); model: sealed int8 digits CNN, {r['model']['package_bytes']:,} bytes, "
        f"test accuracy {r['model']['int8_test_accuracy']}.", "",
        f"Load: {c['clients']} concurrent keep-alive clients on 127.0.0.1, one image per request, bounded by "
        f"{c['max_requests']:,} requests or {c['max_seconds']:.0f} s (stopped by: {load['stopped_by']}), "
        f"after a {c['warmup']}-request warm-up.", "",
        "| requests served | errors | differ from host runtime | accuracy vs labels | throughput | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {load['requests_served']:,} | **{load['errors']}** | {load['predictions_differing_from_host_runtime']} | "
        f"{load['accuracy_vs_labels']} | {load['throughput_rps']} req/s | {lat['p50']} ms | {lat['p95']} ms | "
        f"{lat['p99']} ms | {lat['max']} ms |", "",
        f"Service memory (VmRSS): {mib(s['rss_at_startup_bytes'])} MiB at startup, **{mib(rss['before_bytes'])} MiB "
        f"before** the load (after warm-up), **{mib(rss['after_bytes'])} MiB after**: growth "
        f"**{rss['growth_bytes'] / 2**20:+.2f} MiB** over {load['requests_served']:,} requests "
        f"({load['duration_s']} s). After each round "
        f"({', '.join(f'{n:,}' for n in rss['requests_each_round'])} requests): "
        f"{', '.join(mib(b) for b in rss['after_each_round_bytes'])} MiB. Peak {mib(s['peak_rss_bytes'])} MiB. "
        f"The service stopped on SIGTERM with exit code {s['exit_code']}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
