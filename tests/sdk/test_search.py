"""edgeseal search: the space and budget configs, the Pareto front, a local run through the CLI on digits,
and the same search through a real local Ray cluster (``ray start --head`` in a subprocess)."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseal.compress.recipe import DataSpec, load_recipe, recipe_from_dict  # noqa: E402
from edgeseal.runtime.errors import ConfigError, UnsupportedError  # noqa: E402
from edgeseal.search import (  # noqa: E402
    Budget,
    SearchConfig,
    SearchSpace,
    TrialConfig,
    digits_recipe,
    dominates,
    load_search,
    pareto_front,
    prepare_digits,
    search,
)
from edgeseal.search.executors import gpus_for_trials  # noqa: E402
from edgeseal.search.space import choose_trials, grid, search_from_dict, trial_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# The static int8 digits model uses only these; dynamic int8 adds DynamicQuantizeLinear/MatMulInteger,
# so dynamic trials fail the target check: the failing trials every run must record and survive.
STATIC_OPS = ["Conv", "Gemm", "Relu", "MaxPool", "Reshape", "Flatten", "QuantizeLinear", "DequantizeLinear"]
TINY_SPACE = """
trials = 8
[space]
prune_ratio = [0.0, 0.5]
quantization = ["static-per-channel", "dynamic"]
calibration = ["minmax"]
max_float_layers = [0]
distill = [true]
finetune_epochs = [2]
[budget]
max_drop = 2.5
"""
MAX_SIZE = 600_000  # below the fp32 model (~900 KB): the reference must miss the budget


# --------------------------------------------------------------------------- configs


def test_space_and_budget_validation():
    with pytest.raises(ConfigError, match=r"\[space\] prune_ratio has 1.0; ratios are fractions .* \[0, 1\)"):
        SearchSpace(prune_ratio=[0.0, 1.0])
    with pytest.raises(ConfigError, match=r"\[space\] quantization='int2' is not valid; choose one of .*'dynamic', 'int4'"):
        SearchSpace(quantization=["int2"])
    with pytest.raises(ConfigError, match=r"\[space\] cluster has 'yes'; give true and/or false"):
        SearchSpace(cluster=["yes"])
    with pytest.raises(ConfigError, match=r"\[space\] calibration is empty; give at least one value"):
        SearchSpace(calibration=[])
    with pytest.raises(ConfigError, match=r"max_float_layers has -1"):
        SearchSpace(max_float_layers=[-1])
    with pytest.raises(ConfigError, match=r"distill has 'yes'; give true and/or false"):
        SearchSpace(distill=["yes"])
    with pytest.raises(ConfigError, match=r"finetune_epochs has 2.5"):
        SearchSpace(finetune_epochs=[2.5])
    with pytest.raises(ConfigError, match=r"\[budget\] max_drop=-1 must be >= 0"):
        Budget(max_drop=-1)
    with pytest.raises(ConfigError, match=r"max_size_bytes=0 must be a positive number"):
        Budget(max_size_bytes=0)
    with pytest.raises(ConfigError, match=r"ray='localhost' must be 'auto'.*'ray://HOST:PORT'"):
        SearchConfig(ray="localhost")
    with pytest.raises(ConfigError, match=r"trials=0 must be an int >= 1"):
        SearchConfig(trials=0)
    with pytest.raises(ConfigError, match=r"gpus_per_trial=1.5: above 1"):
        SearchConfig(gpus_per_trial=1.5)
    with pytest.raises(ConfigError, match=r"unknown key 'prune' in \[space\]; valid keys are: .*prune_ratio"):
        search_from_dict({"space": {"prune": [0.5]}})
    for ok in ("auto", "local", "ray://10.0.0.1:10001", "head.example:6379"):
        assert SearchConfig(ray=ok).ray == ok
    space = SearchSpace(quantization=["dynamic", "dynamic"], prune_ratio=[0, 0.5])
    assert space.quantization == ("dynamic",) and space.prune_ratio == (0.0, 0.5)  # str enums, duplicates dropped


def test_search_file_maps_onto_the_configs(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('trials = 5\nseed = 3\ntest = "t.npz"\n[space]\nprune_ratio = [0.5]\n[budget]\nmax_drop = 0.5\n'
                 "max_size_bytes = 1000\n")
    c = load_search(p)
    assert (c.trials, c.seed, c.budget.max_drop, c.budget.max_size_bytes) == (5, 3, 0.5, 1000)
    assert c.space.prune_ratio == (0.5,) and c.test == str(tmp_path / "t.npz")  # relative to the file
    example = load_search(ROOT / "examples" / "digits" / "search.toml")
    assert example.budget.max_drop == 1.0 and len(grid(example.space)) > example.trials
    p.write_text("[space\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_search(p)


def test_grid_collapses_what_does_not_apply_and_samples_reproducibly():
    space = SearchSpace(prune_ratio=[0.0, 0.5], quantization=["none", "dynamic", "static-per-channel"],
                        calibration=["minmax", "entropy"], max_float_layers=[0, 2], distill=[False, True])
    points = grid(space)
    # unpruned: dynamic x 2 float counts + static x 2 calibrations x 2 (fp32 = the reference, apart);
    # pruned: (fp32 + 2 + 4) x distillation on/off
    assert len(points) == (2 + 4) + (1 + 2 + 4) * 2 == len(set(points))
    assert not any(t.is_reference for t in points)
    assert all(t.calibration is None for t in points if t.quantization.value in ("none", "dynamic"))
    assert all(t.distill is None and t.finetune_epochs is None for t in points if t.prune_ratio == 0)
    assert all(t.max_float_layers is None for t in points if t.quantization.value == "none")
    sample = choose_trials(SearchConfig(space=space, trials=5, seed=3))
    assert sample[0].is_reference and len(sample) == 6 and set(sample[1:]) <= set(points)
    assert sample == choose_trials(SearchConfig(space=space, trials=5, seed=3))
    assert {tuple(choose_trials(SearchConfig(space=space, trials=5, seed=s))) for s in range(4)} != {tuple(sample)}
    assert choose_trials(SearchConfig(space=space, trials=64))[1:] == points  # small enough: the whole grid


def test_trial_recipe_derives_from_the_base_recipe():
    base = recipe_from_dict({"prune": {"epochs": 7, "lr": 5e-4}, "distill": {"temperature": 3.0, "alpha": 0.5},
                             "quantize": {"samples": 64, "max_drop": 0.3}, "target": {"name": "rpi4"}})
    budget = Budget(max_drop=1.5)
    t = TrialConfig.canonical(prune_ratio=0.5, quantization="static-int8-symmetric", calibration="entropy",
                              max_float_layers=3, distill=True, finetune_epochs=None)
    r = trial_recipe(base, t, budget)
    assert (r.prune.method.value, r.prune.ratio, r.prune.epochs, r.prune.lr) == ("structured", 0.5, 7, 5e-4)
    assert (r.distill.temperature, r.distill.alpha) == (3.0, 0.5)
    q = r.quantize
    assert (q.mode.value, q.activations, q.symmetric_activations, q.per_channel) == ("static", "int8", True, True)
    assert (q.calibration, q.max_excluded, q.max_drop, q.samples) == ("entropy", 3, 1.5, 64)
    assert r.target.name == "rpi4" and r.device == "auto"
    t = TrialConfig.canonical(prune_ratio=0.25, quantization="static-per-tensor", calibration="minmax",
                              max_float_layers=0, distill=False, finetune_epochs=2)
    r = trial_recipe(base, t, budget, device="cpu")
    assert r.distill is None and r.prune.epochs == 2 and r.quantize.per_channel is False and r.device == "cpu"
    r = trial_recipe(base, TrialConfig(quantization="dynamic", max_float_layers=0), budget)
    assert r.prune is None and r.distill is None and r.quantize.mode.value == "dynamic"
    assert trial_recipe(base, TrialConfig(), budget).quantize is None  # the fp32 reference: export only
    with pytest.raises(UnsupportedError, match=r"search explores ONNX Runtime int8 schemes.*format = 'onnx'"):
        trial_recipe(recipe_from_dict({"export": {"format": "tflite"}}), t, budget)
    with pytest.raises(ConfigError, match=r"remove \[distill\] student"):
        trial_recipe(recipe_from_dict({"distill": {"student": "m:f"}}), t, budget)


def test_digits_recipe_is_the_example_recipe():
    example = load_recipe(ROOT / "examples" / "digits" / "recipe.toml")
    builtin = digits_recipe(Path("/nowhere"))
    strip = lambda r: dataclasses.replace(r, model=dataclasses.replace(r.model, state_dict=None), data=DataSpec())  # noqa: E731
    assert strip(builtin) == strip(example)
    assert builtin.model.state_dict == "/nowhere/digits.pt" and builtin.data.eval == "/nowhere/eval.npz"


# --------------------------------------------------------------------------- the front


def _dominated_by_any(p, others):
    """Independent of edgeseal.search: with accuracy negated, q dominates p when q <= p everywhere and < somewhere."""
    pv = np.array([p[0], p[1], -p[2]], float)
    return any(np.all(qv <= pv) and np.any(qv < pv) for qv in (np.array([q[0], q[1], -q[2]], float) for q in others))


def test_pareto_front_on_hand_made_points():
    a = (100, 1.0, 0.95)
    points = [
        a,
        (200, 2.0, 0.90),  # worse than a everywhere
        (50, 3.0, 0.90),  # smallest: on the front
        (100, 1.0, 0.95),  # equal to a: neither dominates, both stay
        (100, 1.0, 0.94),  # ties a on size and latency, less accurate: dominated
        (300, 0.5, 0.99),  # fastest and most accurate: on the front
        (100, 0.5, 0.95),  # ties a on size and accuracy, faster: dominates a and its twin
    ]
    assert pareto_front(points) == [2, 5, 6]
    assert dominates(points[6], a) and not dominates(a, a) and not dominates(a, points[3])
    assert not dominates(points[2], a) and not dominates(a, points[2])
    assert pareto_front(points[:5]) == [0, 2, 3]
    assert pareto_front([]) == []
    for i, p in enumerate(points):  # agrees with the independent check
        assert (i in pareto_front(points)) == (not _dominated_by_any(p, points[:i] + points[i + 1:]))


def test_budget_filter():
    b = Budget(max_drop=1.0, max_size_bytes=1000, max_latency_ms=0.5)
    assert b.failures(drop=1.0, size_bytes=1000, latency_ms=0.5) == ()  # limits are inclusive
    assert b.failures(drop=-0.3, size_bytes=10, latency_ms=None) == ()  # latency not judged yet
    assert b.failures(drop=1.01, size_bytes=1001, latency_ms=0.51) == (
        "accuracy drop 1.01 > 1 points", "size 1,001 > 1,000 bytes", "p50 0.5100 > 0.5 ms")


def test_gpus_for_trials():
    assert gpus_for_trials(0, None, "auto") == 0 and gpus_for_trials(2, None, "auto") == 1
    assert gpus_for_trials(2, None, "cpu") == 0 and gpus_for_trials(1, 0.25, "auto") == 0.25
    with pytest.raises(ConfigError, match="device='cuda' but the Ray cluster has no GPUs"):
        gpus_for_trials(0, None, "cuda")
    with pytest.raises(ConfigError, match="gpus_per_trial=0.5 but the Ray cluster has 0 GPUs"):
        gpus_for_trials(0, 0.5, "auto")


# --------------------------------------------------------------------------- digits, for real


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits example's files (trained here, as ``edgeseal search --digits`` does), a recipe and a space."""
    root = tmp_path_factory.mktemp("search")
    folder = root / "digits-data"
    recipe, test = prepare_digits(folder, show_progress=False)
    for name in ("train.npz", "calib.npz", "eval.npz", "test.npz", "digits.pt"):
        assert (folder / name).is_file()
    text = (ROOT / "examples" / "digits" / "recipe.toml").read_text().replace("../../out/digits", str(folder))
    recipe_path = root / "recipe.toml"
    recipe_path.write_text(text + f"supported_ops = {json.dumps(STATIC_OPS)}\n")  # [target] is the last table
    assert load_recipe(recipe_path).target.supported_ops == tuple(STATIC_OPS)
    space = root / "space.toml"
    space.write_text(TINY_SPACE)
    return {"root": root, "folder": folder, "recipe": recipe_path, "space": space, "test": test}


def _edgeseal(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgeseal", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cli_run(digits):
    out = digits["root"] / "run"
    proc = _edgeseal("--json", "search", "--recipe", digits["recipe"], "--space", digits["space"], "--workers", 2,
                     "--max-size", MAX_SIZE, "--test", digits["test"], "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout), out


def _check_report(data, folder):
    """What every search report must hold, recomputed from its JSON independently of edgeseal.search."""
    budget = data["budget"]
    trials = {t["id"]: t for t in data["trials"]}
    ref = trials[0]
    assert ref["reference"] and ref["status"] == "ok"
    ok = [t for t in trials.values() if t["status"] == "ok"]
    for t in ok:
        assert t["drop"] == pytest.approx(100 * (ref["val_accuracy"] - t["val_accuracy"]))
        assert t["reference_val_accuracy"] == ref["val_accuracy"]  # every trial exported the same fp32 model
    # the dynamic trials fail the target's op check: recorded with their error, not fatal
    failed = [t for t in trials.values() if t["status"] != "ok"]
    assert failed and all(t["config"]["quantization"] == "dynamic" for t in failed)
    assert all("UnsupportedError" in t["error"] and "DynamicQuantizeLinear" in t["error"] for t in failed)
    assert all(t["status"] == "ok" for t in trials.values() if t["config"]["quantization"] != "dynamic")
    # the fp32 model is larger than the size budget
    assert not ref["meets_budget"] and any("size" in f for f in ref["budget_failures"])

    def meets(t):
        return (t["status"] == "ok" and 100 * (ref["val_accuracy"] - t["val_accuracy"]) <= budget["max_drop"] + 1e-9
                and (budget["max_size_bytes"] is None or t["size_bytes"] <= budget["max_size_bytes"])
                and (budget["max_latency_ms"] is None or t["latency_ms"] <= budget["max_latency_ms"]))

    meeting = [t for t in trials.values() if meets(t)]
    assert {t["id"] for t in meeting} == {t["id"] for t in trials.values() if t["meets_budget"]}
    front = [trials[f["id"]] for f in data["front"]]
    assert front and data["counts"]["front"] == len(front)
    assert {t["id"] for t in front} == {t["id"] for t in trials.values() if t["on_front"]}
    point = lambda t: (t["size_bytes"], t["latency_ms"], t["val_accuracy"])  # noqa: E731
    for t in front:
        assert meets(t), t
        assert t["latency_ms"] is not None  # re-measured in the driver
        assert not _dominated_by_any(point(t), [point(o) for o in meeting if o["id"] != t["id"]])
    for t in meeting:  # every budget-meeting point left out is dominated by one on the front
        if not t["on_front"]:
            assert _dominated_by_any(point(t), [point(f) for f in front])
    assert any("re-measured" in n for n in data["notes"]) and any("validation" in n for n in data["notes"])
    with np.load(folder / "eval.npz") as z:
        val = z["x"], z["y"]
    with np.load(folder / "test.npz") as z:
        test = z["x"], z["y"]
    return trials, front, val, test


def test_local_search_on_digits_through_the_cli(cli_run, digits):
    import onnxruntime as ort

    data, out = cli_run
    trials, front, val, test = _check_report(data, digits["folder"])
    assert data["executor"]["executor"] == "local" and data["executor"]["workers"] == 2
    assert len(trials) == 5 and data["grid_size"] == 4
    pids = {t["where"]["pid"] for t in trials.values()}
    assert data["executor"]["pid"] not in pids  # trials ran in worker processes, not in the driver
    assert all(t["where"]["executor"] == "local" and t["device"] == "cpu" for t in trials.values())
    # the files: JSON equal to what was printed, a PNG, an HTML page embedding it, the front's models
    on_disk = json.loads((out / "search.json").read_text())
    assert on_disk["front"] == data["front"] and on_disk["counts"] == data["counts"]
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    page = (out / "search.html").read_text()
    assert "data:image/png;base64," in page and page.count("<tr") == len(trials) + 1
    for f in data["front"]:
        assert f["label"] in page
        model = (out / f["model"]).read_bytes()
        assert len(model) == f["size_bytes"]
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        acc = lambda xy: float((np.concatenate(  # noqa: E731
            [sess.run(None, {name: xy[0][i:i + 64]})[0] for i in range(0, len(xy[0]), 64)]).argmax(-1) == xy[1]).mean())
        assert acc(val) == pytest.approx(f["val_accuracy"], abs=1e-9)
        assert acc(test) == pytest.approx(f["test_accuracy"], abs=1e-9)
    assert len(list((out / "front").iterdir())) == len(data["front"])


def test_cli_errors(digits, tmp_path):
    bare = tmp_path / "recipe.toml"
    bare.write_text('[model]\nfactory = "edgeseal.converters.zoo:DigitsCNN"\nstate_dict = "missing.pt"\n')
    proc = _edgeseal("--json", "search", "--recipe", bare, "--out", tmp_path / "o", timeout=120)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)
    assert err["error"] == "ConfigError" and "missing.pt" in err["message"] and "make_data.py" in err["message"]
    # an address where no cluster listens: a ConfigError naming it, not a hang (client retries shortened)
    _import_ray()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _edgeseal("--json", "search", "--digits", "--out", digits["root"], "--space", digits["space"],
                     "--ray", f"ray://127.0.0.1:{port}", timeout=120,
                     env={"RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1"})
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    err = json.loads(proc.stdout)
    assert err["error"] == "ConfigError" and f"cannot reach the Ray cluster at 'ray://127.0.0.1:{port}'" in err["message"]


class _FlakyRay:
    """Stands in for ``ray``: ``init`` fails the way a head whose per-client server stalls does."""

    def __init__(self, failures: int):
        self.failures, self.inits, self.shutdowns = failures, 0, 0

    def init(self, **kwargs):
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                         "  File proxier.py\nRuntimeError: Proxy failed to Connect to backend!")

    def shutdown(self):
        self.shutdowns += 1


def test_connect_retries_a_stalled_head_then_names_the_servers_reason(monkeypatch):
    from edgeseal.search import executors as search_exec

    monkeypatch.setattr(search_exec.time, "sleep", lambda s: None)
    ray = _FlakyRay(failures=search_exec.CONNECT_ATTEMPTS - 1)
    assert search_exec._connect(ray, "ray://h:1", None) == search_exec.CONNECT_ATTEMPTS
    assert ray.shutdowns == search_exec.CONNECT_ATTEMPTS - 1
    ray = _FlakyRay(failures=search_exec.CONNECT_ATTEMPTS)
    with pytest.raises(ConfigError) as err:
        search_exec._connect(ray, "ray://h:1", None)
    assert ray.inits == search_exec.CONNECT_ATTEMPTS
    message = str(err.value)
    assert f"after {search_exec.CONNECT_ATTEMPTS} attempts" in message
    assert "Proxy failed to Connect to backend!" in message  # the server's own reason, not only the first line


def test_ray_missing_is_a_clear_error(digits, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    config = dataclasses.replace(load_search(digits["space"]), ray="auto")
    with pytest.raises(UnsupportedError, match=r"pip install 'edgeseal\[ray\]'"):
        search(digits["recipe"], config, show_progress=False)


# --------------------------------------------------------------------------- Ray


def _import_ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("ray is part of edgeseal[dev] and must be importable in CI")
        pytest.skip("ray is not installed (pip install 'edgeseal[ray]')")
    return ray


@pytest.fixture(scope="module")
def ray_head():
    """A real single-node Ray cluster (``edgeseal.search.executors.local_ray_head``), stopped afterwards; its
    clients need ``env`` (the head's auth token)."""
    _import_ray()
    from edgeseal.search.executors import local_ray_head

    with local_ray_head(num_cpus=2) as head:
        yield {"address": head.address, "env": head.env, "log": head.log, "head": head}


NODES = """
import json, sys, ray
ray.init(sys.argv[1], log_to_driver=False)
print(json.dumps([n["NodeID"] for n in ray.nodes() if n["Alive"]]))
ray.shutdown()
"""


def test_search_through_a_local_ray_cluster(ray_head, cli_run, digits):
    out = digits["root"] / "ray-run"
    (out / "front").mkdir(parents=True)
    (out / "front" / "999-an-earlier-front.onnx").write_bytes(b"stale")  # replaced: front/ holds this front only
    (out / "front" / "notes.txt").write_text("mine")  # not a front model: left alone
    proc = _edgeseal("--json", "search", "--recipe", digits["recipe"], "--space", digits["space"],
                     "--max-size", MAX_SIZE, "--test", digits["test"], "--ray", ray_head["address"], "--out", out,
                     env=ray_head["env"])
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:]
                                  + "\nthe head's client server logs:\n" + ray_head["head"].client_server_logs())
    data = json.loads(proc.stdout)
    trials, front, _, _ = _check_report(data, digits["folder"])
    # ask the cluster itself which nodes it has
    ask = subprocess.run([sys.executable, "-c", NODES, ray_head["address"]], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **ray_head["env"]})
    assert ask.returncode == 0, ask.stderr[-2000:]
    nodes = set(json.loads(ask.stdout.strip().splitlines()[-1]))
    assert data["executor"]["executor"] == "ray" and {n["node_id"] for n in data["executor"]["nodes"]} == nodes
    assert data["executor"]["gpus_per_trial"] == 0 and data["executor"]["device"] == "cpu"  # no GPU in the cluster
    for t in trials.values():
        assert t["where"]["executor"] == "ray" and t["where"]["node_id"] in nodes, t["where"]
        assert t["device"] == "cpu"
    # the same configurations as the local run, trained with the same seed on one thread: the same models
    local = {t["label"]: t for t in cli_run[0]["trials"]}
    assert set(local) == {t["label"] for t in trials.values()}
    for t in trials.values():
        other = local[t["label"]]
        assert t["status"] == other["status"]
        if t["status"] == "ok":
            assert (t["size_bytes"], t["val_accuracy"], t["test_accuracy"]) == (
                other["size_bytes"], other["val_accuracy"], other["test_accuracy"])
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "search.html").is_file()
    assert sorted(p.name for p in (out / "front").iterdir()) == sorted(
        [Path(f["model"]).name for f in data["front"]] + ["notes.txt"])


@pytest.mark.slow
def test_a_search_again_with_the_stage_cache_runs_no_trial_and_gets_the_same_results(digits, tmp_path):
    """Every trial is a stage: the second search with the same settings, recipe, weights and data takes
    each trial that succeeded from the cache — the same models byte for byte, the same measured
    accuracy — runs the failed ones again, and a changed budget (part of every key) runs them all."""
    config = dataclasses.replace(load_search(digits["space"]), workers=2, test=str(digits["test"]))
    cache = tmp_path / "cache"
    first = search(digits["recipe"], config, show_progress=False, cache_dir=cache)
    assert first.executor["cached_trials"] == 0 and first.executor["executor"] == "local"
    assert all(t.where["executor"] == "local" for t in first.trials)
    from edgeseal.report import render

    page = render(first, "html")  # the one report model: the page embeds the plot and every trial
    assert 'class="search"' in page and "data:image/png;base64," in page and page.count("<tr") == len(first.trials) + 1
    assert json.loads(render(first, "json")) == json.loads(first.to_json())
    stored = list(cache.glob("??/*/index.json"))
    assert len(stored) == sum(t.ok for t in first.trials)  # failures are not kept

    second = search(digits["recipe"], config, show_progress=False, cache_dir=cache)
    ok = [t for t in first.trials if t.ok]
    assert 0 < len(ok) < len(first.trials)  # the dynamic trials fail here (the target's op list is static-only)
    assert second.executor["cached_trials"] == len(ok)
    for a, b in zip(first.trials, second.trials):
        assert (b.id, b.config, b.status) == (a.id, a.config, a.status)
        if a.ok:  # from the cache: the same model byte for byte, the same measured accuracy
            assert b.where["executor"] == "cache" and b.where["ran_on"]["executor"] == "local"
            assert (b.model, b.size_bytes, b.val_accuracy, b.test_accuracy) == (
                a.model, a.size_bytes, a.val_accuracy, a.test_accuracy)
        else:  # failures are not kept: they ran again, and failed the same way
            assert b.where["executor"] == "local" and b.error == a.error
    # the front is judged again, with latency re-measured side by side: same members, since sizes and
    # accuracies are the same and the size budget decides here
    assert {t.config for t in second.front_trials()} == {t.config for t in first.front_trials()}
    assert any("from the stage cache" in n for n in second.notes)

    stricter = dataclasses.replace(config, budget=dataclasses.replace(config.budget, max_drop=2.0))
    third = search(digits["recipe"], stricter, show_progress=False, cache_dir=cache)
    assert third.executor["cached_trials"] == 0 and all(t.where["executor"] == "local" for t in third.trials)


@pytest.mark.slow
def test_search_through_ray_from_a_program_that_sets_the_token_itself(ray_head, digits, monkeypatch):
    """The Python API in one process, the head's token put into os.environ by the program (as
    bench/search_digits.py and a notebook do): Ray had cached "no token" and the head refused the
    connection until the driver made Ray read its auth settings again."""
    for name, value in ray_head["env"].items():
        monkeypatch.setenv(name, value)
    config = dataclasses.replace(load_search(digits["space"]), ray=ray_head["address"], test=str(digits["test"]))
    try:
        report = search(digits["recipe"], config, show_progress=False)
    except ConfigError as exc:
        pytest.fail(f"{exc}\n{ray_head['head'].client_server_logs()}")
    assert report.executor["executor"] == "ray"
    assert all(t.where["executor"] == "ray" for t in report.trials)
