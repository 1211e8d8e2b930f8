"""``edgeseal build``: the release recipe, the content-hashed stage cache, and whole releases.

The end-to-end tests build a small digits release for ``linux-x86_64`` verified on the
``local`` device (a runtime-only venv); the emulated Raspberry Pis join when the emulated
device exists (``edgeseal device create qemu-rpi``, root) — see ``bench/results/build_digits.md``
for the full three-target release.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeseal.release.pipeline import build
from edgeseal.stages import StageCache
from edgeseal.release import load_release, release_from_dict
from edgeseal.runtime.errors import ConfigError

RECIPE = """
[release]
name = "tiny"
version = 3
out = "release"

[keys]
dir = "keys"

[model]
factory = "edgeseal.converters.zoo:DigitsCNN"
input_shape = [1, 8, 8]

[model.train]
epochs = 4
lr = 0.003

[data]
source = "edgeseal.converters.zoo:digits_splits"

[budget]
max_drop = {max_drop}

[compress.prune]
ratio = 0.25
epochs = 1

[compress.quantize]
mode = "static"

{targets}

[audit]
epsilons = [0.0, 0.1]
lo = 0.0
hi = 1.0
examples = 30
queries = 20
explanation_examples = 10

[audit.gate]
max_mia_auc_increase = 0.1
"""

LOCAL = '[[target]]\nname = "linux-x86_64"\ndevice = "local"\n'


def _write(tmp_path: Path, *, max_drop: float = 2.0, targets: str = LOCAL, name: str = "release.toml") -> Path:
    path = tmp_path / name
    path.write_text(RECIPE.format(max_drop=max_drop, targets=targets))
    return path


def _minimal(**over):
    data = {"release": {"name": "x"}, "model": {"factory": "m:f", "state_dict": "w.pt"},
            "data": {"train": "a.npz", "eval": "b.npz"}, "target": [{"name": "linux-x86_64"}]}
    data.update(over)
    return data


@pytest.mark.parametrize("change, message", [
    ({"target": []}, "names no targets"),
    ({"target": {"name": "rpi4"}}, "write [[target]]"),
    ({"target": [{"name": "no-such-board"}]}, "no-such-board"),
    ({"target": [{"name": "rpi4"}, {"name": "rpi4"}]}, "listed twice"),
    ({"model": {"factory": "m:f"}}, "state_dict"),
    ({"model": {"factory": "m:f", "state_dict": "w.pt", "train": {"epochs": 2}}}, "keep one"),
    ({"compress": {"export": {"format": "tflite"}}}, "comes from each target"),
    ({"compress": {"prune": {"ratio": 2.0}}}, "ratio=2.0"),
    ({"compress": {"squash": {}}}, "unknown table"),
    ({"budget": {"max_drop": -1}}, "max_drop"),
    ({"bogus": {}}, "unknown table"),
    ({"audit": {"epsilons": [0.0], "gate_epsilon_index": 3}}, "gate_epsilon_index"),
    ({"audit": {"gate": {"max_mia_auc": 7}}}, "max_mia_auc"),
])
def test_recipe_errors_name_the_field(change, message):
    with pytest.raises(ConfigError) as err:
        release_from_dict(_minimal(**change))
    assert message in str(err.value)


def test_example_recipe_loads_with_three_targets():
    root = Path(__file__).resolve().parents[2]
    cfg = load_release(root / "examples/digits/release.toml")
    assert [t.name for t in cfg.targets] == ["rpi4", "rpi5", "linux-x86_64"]
    assert [t.device for t in cfg.targets] == ["qemu://qemu-rpi", "qemu://qemu-rpi5", "local"]
    out, keys = cfg.path(cfg.release.out), cfg.path(cfg.keys.dir)
    assert out == Path.home() / "edgeseal-digits/release" and keys == Path.home() / "edgeseal-digits/keys"
    assert root not in out.parents and root not in keys.parents  # the example writes nothing into the checkout


def test_stage_cache_round_trip_and_damage(tmp_path):
    cache = StageCache(tmp_path)
    assert cache.load("ab" * 32) is None
    cache.store("ab" * 32, {"a.bin": b"\x00\x01", "b.json": b"{}"})
    assert cache.load("ab" * 32) == {"a.bin": b"\x00\x01", "b.json": b"{}"}
    (tmp_path / "ab" / ("ab" * 32) / "a.bin").write_bytes(b"\x00\x02")  # damaged: run the stage again
    assert cache.load("ab" * 32) is None
    assert StageCache(None).load("ab" * 32) is None


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One release built twice with the same cache, plus the first run's files."""
    tmp = tmp_path_factory.mktemp("build")
    recipe = _write(tmp)
    cache = tmp / "cache"
    lines: list[str] = []
    first = build(recipe, cache_dir=cache, status=lines.append)
    files_first = _tree(first.out)
    second = build(recipe, cache_dir=cache, status=lines.append)
    return {"tmp": tmp, "recipe": recipe, "cache": cache, "first": first, "second": second,
            "files_first": files_first, "lines": lines}


def test_release_is_verified_signed_and_complete(built):
    from edgeseal.runtime import load
    from edgeseal.runtime.keys import FileKey
    from edgeseal.verify import verify_report

    first = built["first"]
    out = first.out
    from edgeseal.report import render

    assert render(first, "html") == (out / "index.html").read_text()  # the page build wrote is the report's
    assert json.loads(render(first, "json"))["release"] == json.loads((out / "release.json").read_text())
    assert first.passed, first.text()
    rel = json.loads((out / "release.json").read_text())
    t = rel["targets"]["linux-x86_64"]
    assert [c["name"] for c in t["checks"]] == ["compression budget", "verified on the device", "audit gate"]
    assert all(c["passed"] for c in t["checks"])
    # every listed file exists with the listed hash
    for path, digest in t["files"].items():
        import hashlib

        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest
    assert set(t["files"]) == {f"linux-x86_64/{n}" for n in ("tiny.eseal", "compress.json", "verification.json",
                                                             "verification.json.sig", "audit.json", "audit.json.sig")}
    # the reports are signed by the release's publisher and name this package
    pub = out / "publisher.pub"
    vrep = verify_report(out / "linux-x86_64/verification.json", [pub])
    assert vrep["passed"] and vrep["package"]["sha256"] == t["package"]["sha256"]
    arep = verify_report(out / "linux-x86_64/audit.json", [pub])
    assert arep["package_sha256"] == t["package"]["sha256"] and arep["gate"]["passed"]
    cli = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "verify-report", str(out / "linux-x86_64/audit.json"),
                          "--trusted", str(pub)], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr  # an audit report, not only a verification report
    assert json.loads(cli.stdout)["kind"] == "audit" and json.loads(cli.stdout)["package_sha256"] == t["package"]["sha256"]
    # the package opens with the target's device key and answers like the verification says
    model = load(out / "linux-x86_64/tiny.eseal", key=FileKey(built["tmp"] / "keys/linux-x86_64-device.pem"),
                 trusted=[pub])
    assert model.manifest.target == "linux-x86_64" and model.manifest.model_version == 3
    from edgeseal.converters.zoo import load_digits_split

    d = load_digits_split()
    name = model.inputs[0].name
    preds = np.concatenate([model.run({name: d.x_test[i:i + 60]})[model.outputs[0].name]
                            for i in range(0, len(d.x_test), 60)]).argmax(-1)
    assert float((preds == d.y_test).mean()) == pytest.approx(t["verification"]["device_accuracy"], abs=1e-9)
    # compression really ran: pruned then int8, each smaller than the last
    sizes = [s["size_bytes"] for s in t["stages"]]
    assert [s["stage"] for s in t["stages"]] == ["original", "pruned + fine-tuned", "int8 static"]
    assert sizes[0] > sizes[1] > sizes[2]
    # the summary page is self-contained and has both plots
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "http://" not in page and "https://" not in page
    assert "linux-x86_64" in page and "PASSED" in page


def test_rerun_reuses_every_stage_and_reproduces_the_release(built):
    first, second = built["first"], built["second"]
    assert [r.cached for r in first.records] == [False] * 5
    assert [(r.target, r.stage) for r in second.records] == [(r.target, r.stage) for r in first.records]
    assert all(r.cached for r in second.records)
    assert [r.key for r in second.records] == [r.key for r in first.records]
    files_second = _tree(second.out)
    changed = sorted(p for p in files_second if files_second[p] != built["files_first"].get(p))
    assert changed == ["build-log.json"]  # this run's timings; everything else is byte-identical
    log = json.loads((second.out / "build-log.json").read_text())
    assert log["ran"] == 0 and log["cached"] == 5
    assert second.seconds < first.seconds


def test_changing_the_budget_reruns_only_what_it_touches(built, tmp_path):
    """The budget is an input of compression and of the verification gate. Compression runs again;
    it meets both budgets without keeping a layer in float, so its model is byte-identical and the
    package (keyed by the model's hash) and its audit come from the cache; the verification runs
    again because its gate changed."""
    recipe = _write(built["tmp"], max_drop=2.5, name="budget.toml")
    result = build(recipe, cache_dir=built["cache"], out=tmp_path / "rel", status=lambda s: None)
    ran = {r.stage: not r.cached for r in result.records}
    assert ran == {"model": False, "compress": True, "seal": False, "verify": True, "audit": False}
    before = {r.stage: r for r in built["first"].records}
    after = {r.stage: r for r in result.records}
    assert after["compress"].key != before["compress"].key
    assert after["compress"].outputs["model.onnx"] == before["compress"].outputs["model.onnx"]
    assert after["verify"].key != before["verify"].key
    assert result.release["budget"]["max_drop_points"] == 2.5 and result.passed


def test_cli_json_and_a_failing_target(built, tmp_path):
    """A target whose device cannot be reached fails alone, before anything is compressed for it: the
    others are built, the exit code is 1."""
    targets = LOCAL + '[[target]]\nname = "rpi5"\ndevice = "ssh://nobody@127.0.0.1:1"\n'
    recipe = _write(built["tmp"], targets=targets, name="two-targets.toml")  # same keys as the module's release
    proc = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "build", str(recipe), "--cache-dir", str(built["cache"]),
                           "--out", str(tmp_path / "rel")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    rel = out["release"]
    assert rel["passed"] is False
    assert rel["targets"]["linux-x86_64"]["passed"] is True
    rpi5 = rel["targets"]["rpi5"]
    assert rpi5["passed"] is False and "package" not in rpi5  # the device was checked first
    failed = [c for c in rpi5["checks"] if not c["passed"]]
    assert len(failed) == 1 and "unreachable" in failed[0]["detail"] and "127.0.0.1:1" in failed[0]["detail"]
    stages = {(s["target"], s["stage"]): s for s in out["log"]["stages"]}
    assert not any(t == "rpi5" for t, _ in stages)  # nothing was compressed, sealed or verified for it
    assert stages[("linux-x86_64", "verify")]["cached"] is True  # same settings as the module's release


def test_a_partial_build_keeps_the_other_targets(built, tmp_path):
    """``--target linux-x86_64`` rebuilds that target and keeps rpi4 (its files checked by hash); a release of
    another fp32 model is refused instead of mixed. An emulated device that is not built fails its target before
    any compression."""
    from edgeseal.targets import qemu

    targets = LOCAL + '[[target]]\nname = "rpi4"\ndevice = "local"\n'
    recipe = _write(built["tmp"], targets=targets, name="two-local.toml")
    out = tmp_path / "rel"
    full = build(recipe, cache_dir=built["cache"], out=out, status=lambda s: None)
    before = _tree(out)
    assert set(full.release["targets"]) == {"linux-x86_64", "rpi4"}
    lines: list[str] = []
    part = build(recipe, cache_dir=built["cache"], out=out, targets=["linux-x86_64"], status=lines.append)
    assert {r.target for r in part.records} == {"all", "linux-x86_64"}
    assert part.release["targets"]["rpi4"] == full.release["targets"]["rpi4"]
    after = _tree(out)
    assert {p: after[p] for p in after if p.startswith("rpi4/")} == {p: before[p] for p in before if p.startswith("rpi4/")}
    assert any("keeping rpi4" in line for line in lines)
    (out / "rpi4/compress.json").write_text("{}")  # a kept file that changed is refused, not carried over
    with pytest.raises(ConfigError, match="rpi4/compress.json is missing or changed"):
        build(recipe, cache_dir=built["cache"], out=out, targets=["linux-x86_64"], status=lambda s: None)
    other = _write(built["tmp"], targets=targets, name="other-model.toml")
    other.write_text(other.read_text().replace("epochs = 4", "epochs = 3", 1))
    with pytest.raises(ConfigError, match="built from another fp32 model"):
        build(other, cache_dir=built["cache"], out=out, targets=["linux-x86_64"], status=lambda s: None)
    if not qemu.device_status("qemu-rpi5")["ready"]:
        pi = _write(built["tmp"], targets=LOCAL + '[[target]]\nname = "rpi5"\ndevice = "qemu-rpi5"\n', name="pi.toml")
        res = build(pi, cache_dir=built["cache"], out=tmp_path / "pi", status=lambda s: None)
        assert res.release["targets"]["rpi5"]["device"] == "qemu://qemu-rpi5"  # one name: the bare one is accepted
        detail = res.release["targets"]["rpi5"]["checks"][0]["detail"]
        assert "DeviceError" in detail and "device create qemu-rpi5" in detail
        assert not any(r.target == "rpi5" for r in res.records) and res.release["targets"]["linux-x86_64"]["passed"]


def test_unknown_target_filter_is_refused(built):
    with pytest.raises(ConfigError, match="android-arm64"):
        build(built["recipe"], cache_dir=built["cache"], targets=["android-arm64"], status=lambda s: None)


def test_emulated_raspberry_pis(tmp_path, built):
    """rpi4 and rpi5 on the emulated device (QEMU, Cortex-A72 / Cortex-A76): opt-in, it must exist."""
    from edgeseal.targets import qemu

    if not qemu.device_status("qemu-rpi")["ready"]:
        pytest.skip("opt-in: build the emulated Pi once with `edgeseal device create qemu-rpi` (root, ~5 min)")
    targets = textwrap.dedent("""
        [[target]]
        name = "rpi4"
        device = "qemu://qemu-rpi"

        [[target]]
        name = "rpi5"
        device = "qemu://qemu-rpi5"
    """)
    result = build(_write(tmp_path, targets=targets), cache_dir=built["cache"], status=lambda s: None)
    assert result.passed, result.text()
    for name, cipher in (("rpi4", "chacha20-poly1305"), ("rpi5", "aes-256-gcm")):
        t = result.release["targets"][name]
        assert t["verification"]["machine"] == "aarch64" and t["package"]["cipher"] == cipher
        assert t["verification"]["agreement_with_host"] == 1.0


def test_release_folder_is_replaced_whole_but_never_a_foreign_one(built, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ConfigError, match="not an edgeseal release folder"):
        build(built["recipe"], cache_dir=built["cache"], out=foreign, status=lambda s: None)
    assert (foreign / "cat.jpg").read_bytes() == b"\xff\xd8"
    out = built["first"].out
    (out / "linux-x86_64" / "stale-report.json").write_text("{}")  # left by an earlier release
    build(built["recipe"], cache_dir=built["cache"], status=lambda s: None)
    assert not (out / "linux-x86_64" / "stale-report.json").exists()
    assert (out / "linux-x86_64" / "tiny.eseal").is_file()


DP_ROBUST = """
[compress.dp]                           # DP-SGD fine-tuning after pruning
epsilon = 8.0
epochs = 1

[budget]
max_drop = 40.0
min_robust_accuracy = {need}
robust_epsilon = 0.05
"""


def test_a_release_with_dp_fine_tuning_and_a_robust_accuracy_budget(built, tmp_path):
    """Issue 15 through `build`: [compress.dp] and a robust-accuracy [budget] reach the release. The sealed
    package's manifest carries the spent (epsilon, delta) with its scope, the release checks the robust
    accuracy compress measured on the returned model, and a requirement it cannot meet fails the target."""
    from edgeseal.runtime.format import Package

    def recipe(need: float, name: str) -> Path:
        text = RECIPE.format(max_drop=2.0, targets=LOCAL).replace("[budget]\nmax_drop = 2.0\n", "")
        path = built["tmp"] / name  # the module's keys and cache: the trained model comes from the cache
        path.write_text(text + DP_ROBUST.format(need=need))
        return path

    result = build(recipe(5.0, "dp.toml"), cache_dir=built["cache"], out=tmp_path / "dp", status=lambda s: None)
    assert result.passed, result.text()
    t = result.release["targets"]["linux-x86_64"]
    report = json.loads((result.out / "linux-x86_64/compress.json").read_text())
    assert [s["stage"] for s in t["stages"]] == ["original", "pruned + DP fine-tuned", "int8 static"]
    p = report["privacy"]
    assert p["mechanism"].startswith("DP-SGD") and 0 < p["epsilon"] <= 8.0 + 1e-6 and p["records"] > 0
    manifest = Package.parse((result.out / "linux-x86_64/tiny.eseal").read_bytes()).manifest.compression
    assert manifest["privacy"]["epsilon"] == p["epsilon"] and manifest["privacy"]["delta"] == p["delta"]
    assert manifest["privacy"]["not_covered"] == p["not_covered"] and manifest["privacy"]["not_covered"]
    robust = report["budget"]["robust"]
    assert robust["epsilon"] == 0.05 and robust["met"] is True and robust["robust_accuracy"] >= 5.0
    checks = {c["name"]: c for c in t["checks"]}
    assert checks["robust accuracy budget"]["passed"] is True
    assert f"{robust['robust_accuracy']:.2f}%" in checks["robust accuracy budget"]["detail"]
    # more robust accuracy than the model has: compress says so and the target fails on that check alone
    miss = build(recipe(100.0, "dp-miss.toml"), cache_dir=built["cache"], out=tmp_path / "miss", status=lambda s: None)
    t = miss.release["targets"]["linux-x86_64"]
    assert not miss.passed and not t["passed"]
    failed = [c for c in t["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["robust accuracy budget"] and "MISSES the required 100%" in failed[0]["detail"]
