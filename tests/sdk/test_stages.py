"""The one stage pipeline (edgeseal.stages): content-hashed keys, a cache that returns the same bytes,
damaged entries run again, failures recorded; recipe inputs carry the content of the files and the
user code they name."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.stages import StageCache, Stages, arrays_digest, callable_digest, content_inputs


def _counting(files):
    calls = []

    def fn():
        calls.append(1)
        return dict(files)

    return fn, calls


def test_a_stage_runs_once_and_then_comes_back_from_the_cache_byte_for_byte(tmp_path):
    lines = []
    fn, calls = _counting({"model.onnx": b"\x01\x02", "report.json": b"{}"})
    first = Stages(StageCache(tmp_path), lines.append, total=1, code="test")
    out = first.run("t", "compress", {"ratio": 0.5}, fn, main="model")
    assert out == {"model.onnx": b"\x01\x02", "report.json": b"{}"} and calls == [1]
    assert not first.records[0].cached and first.records[0].main == "model.onnx"
    assert any("(1/1) [t] compress: running" in line for line in lines)

    again = Stages(StageCache(tmp_path), lines.append, code="test")
    assert again.run("t", "compress", {"ratio": 0.5}, fn) == out and calls == [1]
    assert again.records[0].cached and again.records[0].key == first.records[0].key
    assert again.records[0].outputs == first.records[0].outputs

    # another input, another code version: another key, the stage runs
    Stages(StageCache(tmp_path), code="test").run("t", "compress", {"ratio": 0.25}, fn)
    Stages(StageCache(tmp_path), code="other").run("t", "compress", {"ratio": 0.5}, fn)
    assert calls == [1, 1, 1]


def test_a_damaged_cache_entry_runs_the_stage_again(tmp_path):
    fn, calls = _counting({"a": b"good"})
    stages = Stages(StageCache(tmp_path), code="x")
    stages.run("t", "s", {}, fn)
    (entry,) = [p for p in tmp_path.glob("??/*/a")]
    entry.write_bytes(b"evil")
    assert Stages(StageCache(tmp_path), code="x").run("t", "s", {}, fn) == {"a": b"good"} and calls == [1, 1]


def test_no_cache_runs_every_time_and_a_failure_is_recorded_and_raised(tmp_path):
    fn, calls = _counting({"a": b"1"})
    stages = Stages(StageCache(None), code="x")
    stages.run("t", "s", {}, fn)
    stages.run("t", "s", {}, fn)
    assert calls == [1, 1] and not any(r.cached for r in stages.records)

    def broken():
        raise ConfigError("no data")

    with pytest.raises(ConfigError):
        stages.run("t", "broken", {}, broken)
    assert stages.records[-1].error == "ConfigError: no data" and stages.records[-1].outputs == {}


def test_lookup_and_store_for_stages_that_run_elsewhere(tmp_path):
    stages = Stages(StageCache(tmp_path), code="x")
    key, files = stages.lookup("trial 1", "search trial", {"trial": 1})
    assert files is None and stages.records == []
    stages.store("trial 1", "search trial", key, {"m": b"x"}, 1.5)
    again = Stages(StageCache(tmp_path), code="x")
    assert again.lookup("trial 1", "search trial", {"trial": 1}) == (key, {"m": b"x"})
    assert again.records[0].cached and stages.records[0].seconds == 1.5


def test_content_inputs_follow_the_files_and_the_user_code_a_recipe_names(tmp_path, monkeypatch):
    data = tmp_path / "train.npz"
    np.savez(data, x=np.zeros(3))
    module = tmp_path / "my_models.py"
    module.write_text("def Net():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = {"model": {"factory": "my_models:Net", "input_shape": [1, 8, 8]}, "data": {"train": str(data)},
              "ours": "edgeseal.converters.zoo:DigitsCNN", "ratio": 0.5, "name": "not a file"}
    before = content_inputs(recipe)
    assert before["ratio"] == 0.5 and before["name"] == "not a file" and before["model"]["input_shape"] == [1, 8, 8]
    assert before["ours"] == {"callable": "edgeseal.converters.zoo:DigitsCNN", "code": "edgeseal"}
    assert before["data"]["train"]["file"] == str(data)
    json.dumps(before)  # JSON-ready: it goes into a key
    np.savez(data, x=np.ones(3))  # new data, same path
    module.write_text("def Net():\n    return 2\n")  # the factory edited
    sys.modules.pop("my_models", None)
    after = content_inputs(recipe)
    assert after["data"]["train"]["sha256"] != before["data"]["train"]["sha256"]
    assert after["model"]["factory"]["code"] != before["model"]["factory"]["code"]
    assert callable_digest("no_such_module_here:f") == "unresolved:no_such_module_here"
    relative = content_inputs({"train": "train.npz"}, base=tmp_path)
    assert relative["train"]["sha256"] == after["data"]["train"]["sha256"]


def test_arrays_digest_sees_dtype_shape_and_values():
    a = np.arange(6, dtype=np.float32)
    assert arrays_digest(a) == arrays_digest(a.copy())
    assert len({arrays_digest(a), arrays_digest(a.reshape(2, 3)), arrays_digest(a.astype(np.float64)),
                arrays_digest(a + 1), arrays_digest(None)}) == 5
