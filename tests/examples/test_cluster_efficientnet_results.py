"""README's EfficientNet-Lite0 clustering table and bench/results/cluster_efficientnet.md state the figures of
bench/results/cluster_efficientnet.json, and its verdict follows from its own measurements (no model is run here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench/results/cluster_efficientnet.json"


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("_cluster_efficientnet", ROOT / "bench/cluster_efficientnet.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_results_page_and_verdict_follow_from_the_json() -> None:
    r = json.loads(RESULTS.read_text())
    bench = _bench()
    assert (ROOT / "bench/results/cluster_efficientnet.md").read_text() == bench.render(r)
    assert r["verdict"] == bench.verdict(r["variants"], r["fp32_onnx_bytes"])
    for name, v in r["variants"].items():
        assert v["goal"]["sealed<=fp32/8"] == (v["sealed_codebook_bytes"] <= r["fp32_onnx_bytes"] / 8), name
        assert v["goal"]["agreement>=97.0"] == (v["evaluation_agreement"] >= 97.0), name
        assert v["encoded_bytes"] == v["encoded"]["graph_bytes"] + v["encoded"]["tensor_bytes"], name
        assert abs(v["ratio_sealed_vs_fp32"] - r["fp32_onnx_bytes"] / v["sealed_codebook_bytes"]) < 1e-9, name
        assert v["evaluation_sqnr_db"] > 0, name
    # the lab rows rendered are the lab file's
    assert r["lab"] == json.loads((ROOT / "bench/ptq_lab/grid_attempts.json").read_text())
    assert r["load"]["outputs_bit_identical_to_converter_model"] is True


def test_readme_table_matches_the_json() -> None:
    r = json.loads(RESULTS.read_text())
    text = (ROOT / "README.md").read_text()
    start = text.index("**EfficientNet-Lite0 clustering**")
    table = next(block for block in text[start:].split("\n\n") if block.startswith("| variant"))
    rows = {row.split("|")[1].strip().strip("`"): [c.strip() for c in row.split("|")[2:-1]]
            for row in table.splitlines()[2:]}
    assert set(rows) == set(r["variants"])
    for name, v in r["variants"].items():
        assert rows[name] == [f"{v['sealed_codebook_bytes']:,}", f"{v['ratio_sealed_vs_fp32']:.2f}×",
                              f"{v['selection_agreement']:.1f}", f"{v['evaluation_agreement']:.1f}",
                              f"{v['evaluation_sqnr_db']:.1f} dB"], name
