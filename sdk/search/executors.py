"""Where ``edgeseal search`` trials run: local worker processes, or Ray tasks on a cluster.

A trial gets everything as values — the base recipe, the fp32 weights as
``torch.save`` bytes, the data as arrays — so a worker needs the code but no
files: a remote Ray node does not see the driver's disk. Each trial rebuilds
the model from the recipe's ``[model] factory``, runs ``edgeseal.compress`` on
it single-threaded and returns a ``TrialResult`` with the model bytes. A trial
that raises is returned as an error result; it never stops the search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, InternalError, UnsupportedError

from ..compress.recipe import CompressRecipe
from .report import TrialResult
from .space import Budget, TrialConfig, trial_recipe

__all__ = ["TrialInputs", "run_trial", "run_local", "run_ray", "gpus_for_trials", "import_ray", "RayHead",
           "local_ray_head"]

TRIAL_LATENCY_RUNS = 50  # provisional: the driver re-measures the candidates side by side


@dataclasses.dataclass(frozen=True)
class TrialInputs:
    """What every trial shares, as values (picklable, sent once per worker or put once in Ray's store)."""

    recipe: CompressRecipe
    budget: Budget
    state_dict: bytes = dataclasses.field(repr=False)  # torch.save(model.state_dict())
    train: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(repr=False)
    calibration: np.ndarray = dataclasses.field(repr=False)
    validation: tuple[np.ndarray, np.ndarray] = dataclasses.field(repr=False)
    test: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(default=None, repr=False)


OnResult = Callable[[TrialResult], None]


# --------------------------------------------------------------------------- one trial


def _rebuild(inputs: TrialInputs) -> Any:
    import torch

    from ..compress.core import load_model

    model = load_model(None, factory=inputs.recipe.model.factory)
    model.load_state_dict(torch.load(io.BytesIO(inputs.state_dict), map_location="cpu", weights_only=True))
    return model.eval()


def _accuracy(model: bytes, xy: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    from edgeseal.converters.infer import runner_for

    if xy is None:
        return None
    x, y = xy
    return float((runner_for(model).run_batched(x).argmax(-1) == y).mean())


def run_trial(inputs: TrialInputs, trial_id: int, trial: TrialConfig, *, device: str | None = None,
              where: dict[str, Any] | None = None) -> TrialResult:
    """Compress a fresh copy of the fp32 model with this trial's configuration and measure it.

    Exceptions become an error result. The worker that calls this sets torch to one thread
    (``_init_worker``, ``_ray_trial``): trials run side by side.
    """
    from edgeseal.converters.common import resolve_device

    from ..compress.core import compress

    started = time.perf_counter()
    where = where or {"executor": "local", "host": socket.gethostname(), "pid": os.getpid()}
    dev = device or "?"
    try:
        recipe = trial_recipe(inputs.recipe, trial, inputs.budget, device=device, latency_runs=TRIAL_LATENCY_RUNS)
        dev = str(resolve_device(recipe.device))
        result = compress(_rebuild(inputs), recipe, train=inputs.train, calibration=inputs.calibration,
                          eval=inputs.validation, show_progress=False)
        first, last = result.report.stages[0], result.report.stages[-1]
        q = result.report.quantization
        return TrialResult(
            id=trial_id, config=trial, status="ok", seconds=time.perf_counter() - started, where=where, device=dev,
            # clustered trials ship codebook-encoded weights: their size is that (converters.cluster.encoded_size)
            size_bytes=last.encoded_bytes or last.size_bytes, zlib_bytes=last.zlib_bytes,
            val_accuracy=last.classification.accuracy, test_accuracy=_accuracy(result.model, inputs.test),
            reference_val_accuracy=first.classification.accuracy,
            latency_p50_ms=last.latency.p50_ms, latency_p95_ms=last.latency.p95_ms,
            float_layers=tuple(q.excluded) if q is not None else (),
            warnings=tuple(result.report.warnings), model=result.model,
        )
    except Exception as exc:  # a failing configuration is a result, not the end of the search
        return TrialResult(
            id=trial_id, config=trial, status="error", seconds=time.perf_counter() - started, where=where,
            device=dev,
            error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:],
        )


def _failed(trial_id: int, trial: TrialConfig, message: str, where: dict[str, Any]) -> TrialResult:
    return TrialResult(id=trial_id, config=trial, status="error", seconds=0.0, where=where, device="?", error=message)


# --------------------------------------------------------------------------- local processes

_worker_inputs: TrialInputs | None = None  # set once per worker process by the pool initializer


def _init_worker(inputs: TrialInputs) -> None:
    """Runs in each fresh worker process (never in the caller's): one thread, the shared inputs."""
    global _worker_inputs
    os.environ["OMP_NUM_THREADS"] = "1"
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # torch/onnx deprecation chatter would tear through the progress bar
    _worker_inputs = inputs


def _pool_trial(trial_id: int, trial: TrialConfig) -> TrialResult:
    if _worker_inputs is None:
        raise InternalError("search worker started without its inputs (_init_worker did not run)")
    return run_trial(_worker_inputs, trial_id, trial)


def run_local(inputs: TrialInputs, trials: Sequence[tuple[int, TrialConfig]], *, workers: int,
              on_result: OnResult) -> dict[str, Any]:
    """Run trials in ``workers`` fresh processes (spawned: torch does not survive fork well); returns executor info."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(inputs,)) as pool:
        futures = {pool.submit(_pool_trial, tid, t): (tid, t) for tid, t in trials}
        for fut in as_completed(futures):
            tid, t = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                result = _failed(tid, t, f"worker process failed: {type(exc).__name__}: {exc}", {"executor": "local"})
            on_result(result)
    return {"executor": "local", "workers": workers, "host": socket.gethostname(), "pid": os.getpid()}


# --------------------------------------------------------------------------- Ray


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UnsupportedError(
            "running trials on Ray needs the ray package; install it with pip install 'edgeseal[ray]' "
            "(the same Ray and Python versions as the cluster), or leave out --ray to run locally",
            reason="ray is not installed",
        ) from None
    return ray


def gpus_for_trials(cluster_gpus: float, requested: float | None, device: str) -> float:
    """GPUs each Ray trial asks for: none for device='cpu', else ``requested`` or 1 when the cluster has GPUs."""
    if device == "cpu":
        return 0.0
    if requested is None:
        if device.startswith("cuda") and cluster_gpus <= 0:
            raise ConfigError("the recipe asks for device='cuda' but the Ray cluster has no GPUs; "
                              "use device='auto' or add GPU nodes")
        return 1.0 if cluster_gpus > 0 else 0.0
    if requested > 0 and requested > cluster_gpus:
        raise ConfigError(f"gpus_per_trial={requested:g} but the Ray cluster has {cluster_gpus:g} GPUs; "
                          "lower it (0 runs on CPUs)")
    return float(requested)


CONNECT_ATTEMPTS = 3


def _reason(exc: BaseException) -> str:
    """One line for an error message: the exception's first line, plus its last one when they differ (Ray's
    client puts the server's traceback after "Initialization failure from server:", the cause at its end)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


def _reread_ray_auth() -> None:
    """Make Ray read its authentication mode and token from the environment now.

    Ray caches them (its RayConfig and AuthenticationTokenLoader) before a driver connects: a program
    that puts the head's RAY_AUTH_MODE / RAY_AUTH_TOKEN into ``os.environ`` itself (as a notebook or a
    script that starts its own head does) then connects without a token, and the head refuses it
    ("Authentication required but no authorization header provided" in its client server log, a
    "ray client connection timeout" here). Ray has no public call to re-read them; the one its own tests
    use is called where it exists."""
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:  # another Ray version: nothing cached this way, or nothing to reset with
        return
    reset_auth_token_state()


def _connect(ray: Any, address: str, workers: int | None) -> int:
    """Connect (or start, for 'local'); returns how many attempts it took."""
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if address == "local":
        kwargs.update(num_cpus=workers or os.cpu_count(), include_dashboard=False)
    else:
        kwargs["address"] = address
        _reread_ray_auth()
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            ray.init(**kwargs)
            return attempt
        except Exception as exc:
            if isinstance(exc, ConnectionAbortedError) and attempt < CONNECT_ATTEMPTS:
                # The head reached us but its per-client server did not come up (the head's proxy gives
                # it 30 s; on a busy head its start sometimes stalls); each attempt starts a new one.
                ray.shutdown()
                time.sleep(2.0 * attempt)
                continue
            tried = f" after {attempt} attempts" if attempt > 1 else ""
            raise ConfigError(
                f"cannot reach the Ray cluster at {address!r}{tried} ({type(exc).__name__}: {_reason(exc)}); "
                "check that `ray status` works on the head, that the address is ray://HEAD:10001 (its client "
                "server port), that Ray and Python versions match the cluster's, and, if the cluster uses token "
                "authentication, that RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) "
                "are set here; the head's ray_client_server*.err logs (session_latest/logs) say more"
            ) from None


def _ray_trial(inputs: TrialInputs, trial_id: int, trial: TrialConfig, device: str) -> TrialResult:
    """Body of one Ray task: where it ran (node, host, process, GPUs), then the trial."""
    import ray
    import torch

    torch.set_num_threads(1)  # this worker process is Ray's; it runs one trial per CPU it was given
    ctx = ray.get_runtime_context()
    where = {
        "executor": "ray", "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(), "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }
    return run_trial(inputs, trial_id, trial, device=device, where=where)


def run_ray(inputs: TrialInputs, trials: Sequence[tuple[int, TrialConfig]], *, address: str, workers: int | None,
            gpus_per_trial: float | None, on_result: OnResult) -> dict[str, Any]:
    """Run each trial as a Ray task (1 CPU, GPUs when the cluster has them); returns executor info.

    An existing connection (``ray.init`` called by the caller, e.g. with a ``runtime_env``) is used and
    left open; otherwise this connects to ``address`` and disconnects at the end.
    """
    ray = import_ray()
    owned = not ray.is_initialized()
    started = time.perf_counter()
    attempts = _connect(ray, address, workers) if owned else 0
    connect_s = time.perf_counter() - started
    try:
        resources = ray.cluster_resources()
        gpus = gpus_for_trials(float(resources.get("GPU", 0)), gpus_per_trial, inputs.recipe.device)
        device = "cuda" if gpus > 0 else "cpu"
        shared = ray.put(inputs)
        task = ray.remote(_ray_trial).options(num_cpus=1, num_gpus=gpus, max_retries=0)
        refs = {task.remote(shared, tid, t, device): (tid, t) for tid, t in trials}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                tid, t = refs[ref]
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task's worker died, or the node went away
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    result = _failed(tid, t, f"Ray task failed: {type(exc).__name__}: {first}", {"executor": "ray"})
                on_result(result)
        nodes = [
            {"node_id": n["NodeID"], "node_ip": n.get("NodeManagerAddress"), "alive": n.get("Alive"),
             "resources": n.get("Resources", {})}
            for n in ray.nodes()
        ]
        return {"executor": "ray", "address": address, "connect_attempts": attempts, "connect_s": round(connect_s, 2),
                "gpus_per_trial": gpus, "device": device,
                "cluster_resources": {k: v for k, v in resources.items() if not k.startswith("node:")}, "nodes": nodes}
    finally:
        if owned:
            ray.shutdown()


# --------------------------------------------------------------------------- a throwaway local Ray cluster


@dataclasses.dataclass(frozen=True)
class RayHead:
    address: str  # ray://127.0.0.1:PORT
    env: dict[str, str]  # what a client (driver) needs in its environment: the head's auth token
    log: Any  # pathlib.Path of the head's output

    def client_server_logs(self, tail: int = 2000) -> str:
        """The last lines of the head's Ray client server logs (its proxy and each per-client server):
        what to read when a client could not connect."""
        parts = []
        for path in sorted(self.log.parent.glob("session_*/logs/ray_client_server*")):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"== {path.name}\n{text[-tail:]}")
        return "\n".join(parts) or "(no client server log written)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Processes of one session (``ray start`` and everything it spawned), from /proc."""
    from pathlib import Path

    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after pid (comm): state ppid pgrp session
            pids.append(int(stat.parent.name))
    return pids


@contextlib.contextmanager
def local_ray_head(*, num_cpus: int = 2, timeout: float = 90.0) -> Iterator[RayHead]:
    """A real single-node Ray cluster for trying ``--ray`` (the tests and the benchmark use it).

    ``ray start --head --block`` runs in its own session with a random auth token (its client
    server listens on every interface); on exit only this cluster is stopped — SIGTERM to
    ``ray start``, then whatever is left in its session — not every Ray process of the machine
    as ``ray stop`` would. Linux only (reads /proc).
    """
    import secrets
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import_ray()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    log = Path(temp) / "head.log"
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port, client_port = _free_port(), _free_port()
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
           f"--ray-client-server-port={client_port}", f"--num-cpus={num_cpus}", "--include-dashboard=false",
           "--disable-usage-stats", f"--temp-dir={temp}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **env})
    try:
        deadline = time.time() + timeout
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise UnsupportedError(f"ray start --head did not come up:\n{log.read_text()[-3000:]}",
                                       reason="ray head")
            time.sleep(0.5)
        yield RayHead(f"ray://127.0.0.1:{client_port}", env, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _session_pids(proc.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 10
            while _session_pids(proc.pid) and time.time() < deadline:
                time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
