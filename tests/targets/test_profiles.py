"""Target profiles: the shipped data, user profile files, and validation messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.targets import QuantFormat, get_profile, list_profiles, load_profile_file


def test_builtin_profiles_and_their_facts():
    by_name = {p.name: p for p in list_profiles()}
    assert {"rpi4", "rpi5", "android-arm64", "linux-x86_64"} <= set(by_name)
    rpi4, rpi5, android, x86 = (by_name[n] for n in ("rpi4", "rpi5", "android-arm64", "linux-x86_64"))
    # the Pi 4 has no AES instructions -> ChaCha20; the Pi 5 has them and the dot product
    assert (rpi4.arch, rpi4.cpu, rpi4.cipher, rpi4.has_aes) == ("aarch64", "cortex-a72", "chacha20-poly1305", False)
    assert (rpi5.cipher, rpi5.has_aes, "dotprod" in rpi5.cpu_features) == ("aes-256-gcm", True, True)
    assert (android.runtime.value, android.format.value, android.quantization.format) == (
        "litert", "tflite", QuantFormat.TFLITE_INT8)
    assert (x86.arch, x86.runtime.value, x86.threads) == ("x86_64", "onnxruntime", 0)
    for p in (rpi4, rpi5, android):
        assert p.quantization.per_channel and p.quantization.weight_symmetric and p.quantization.weights == "int8"
        assert p.threads == 4 and p.memory_budget_mb > 0
    # op sets are real data: ORT's CPU kernels and LiteRT's builtins
    ort_ops, tfl_ops = rpi4.ops(), android.ops()
    assert ort_ops.supports("ai.onnx", "QLinearConv") and ort_ops.supports("com.microsoft", "QGemm")
    assert not ort_ops.supports("ai.onnx", "NotAnOp")
    assert tfl_ops.supports("tflite", "FULLY_CONNECTED") and tfl_ops.supports("tflite", "CONV_2D")
    assert len(ort_ops) > 250 and len(tfl_ops) > 150
    d = rpi4.to_dict()
    assert d["quantization"]["format"] == "qdq" and d["runtime"] == "onnxruntime" and d["cpu_features"] == ["neon", "crc32"]


def test_user_profile_shadows_and_extends(tmp_path, monkeypatch):
    text = Path(get_profile("rpi4").source).read_text()
    (tmp_path / "rpi4-lowmem.toml").write_text(
        text.replace('name = "rpi4"', 'name = "rpi4-lowmem"').replace("memory_budget_mb = 512", "memory_budget_mb = 128"))
    monkeypatch.setenv("EDGESEAL_TARGETS_PATH", str(tmp_path))
    names = [p.name for p in list_profiles()]
    assert "rpi4-lowmem" in names and "rpi4" in names
    assert get_profile("rpi4-lowmem").memory_budget_mb == 128
    assert get_profile(tmp_path / "rpi4-lowmem.toml").cipher == "chacha20-poly1305"


@pytest.mark.parametrize(
    "edit, message",
    [
        (("cipher = \"chacha20-poly1305\"", "cipher = \"rot13\""), "cipher is 'rot13'"),
        (("runtime = \"onnxruntime\"", "runtime = \"litert\""), "does not run format 'onnx'"),
        (("threads = 4", "threads = -1"), "threads must be an integer >= 0"),
        (("format = \"qdq\"", "format = \"fp8\""), "quantization.format is 'fp8'"),
        (("threads = 4", "threads = 4\ncolour = \"red\""), "unknown field(s) colour"),
        (("arch = \"aarch64\"\n", ""), "missing field(s) arch"),
        (("threads = 4", "threads = ["), "is not valid TOML"),
    ],
)
def test_invalid_profiles_name_the_field(tmp_path, edit, message):
    text = Path(get_profile("rpi4").source).read_text()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as err:
        load_profile_file(path)
    assert message in str(err.value)


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown target 'rpi9'.*rpi4.*rpi5"):
        get_profile("rpi9")


def test_targets_cli_lists_and_shows():
    out = subprocess.run([sys.executable, "-m", "edgeseal", "targets"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "arch", "runtime", "format"]
    rpi4 = next(line.split() for line in lines if line.startswith("rpi4 "))
    assert rpi4[:6] == ["rpi4", "aarch64", "onnxruntime", "onnx", "qdq", "chacha20-poly1305"]
    show = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "targets", "android-arm64"],
                          capture_output=True, text=True)
    import json

    data = json.loads(show.stdout)
    assert (data["name"], data["format"], data["quantization"]["activations"]) == ("android-arm64", "tflite", "int8")


def test_one_toml_reader_for_every_edgeseal_file(tmp_path):
    """Recipes, release and search files, audit recipes, target profiles and op sets go through one reader,
    whose errors name what the file is, and where TOML stopped or why the file could not be read."""
    from edgeseal.compress import recipe as compress_recipe
    from edgeseal.audit import config as audit_config
    from edgeseal.release import load_release
    from edgeseal.search.space import load_search
    from edgeseal.targets import read_toml

    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nfactory = \n")
    latin = tmp_path / "latin.toml"
    latin.write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    missing = tmp_path / "missing.toml"
    for load, what in ((compress_recipe.load_recipe, "recipe"), (audit_config.load_recipe, "recipe"),
                       (load_release, "release recipe"), (load_search, "search file"),
                       (load_profile_file, "target profile")):
        with pytest.raises(ConfigError, match=rf"^{what} .*bad.toml is not valid TOML: .*line 2"):
            load(bad)
        with pytest.raises(ConfigError, match=rf"^{what} .*missing.toml does not exist"):
            load(missing)
        with pytest.raises(ConfigError, match=rf"^{what} .*latin.toml is not UTF-8 text"):
            load(latin)
        with pytest.raises(ConfigError, match=rf"^cannot read {what} .*: Is a directory"):
            load(tmp_path)
    ok = tmp_path / "ok.toml"
    ok.write_text("a = [1, 2]\n[b]\nc = 'd'\n")
    assert read_toml(ok, "any file") == {"a": [1, 2], "b": {"c": "d"}}
