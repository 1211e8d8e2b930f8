"""The README's MiniLM int8 table says what bench/results/minilm_int8.json measured (no hand-typed figure)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_minilm_table_matches_the_results_json():
    v = json.loads((ROOT / "bench/results/minilm_int8.json").read_text())["variants"]
    start = (ROOT / "README.md").read_text().index("**MiniLM int8**")
    table = (ROOT / "README.md").read_text()[start:].split("\n\n")[1]
    rows = {r.split("|")[1].replace("*", "").strip(): [c.strip().strip("*") for c in r.split("|")[2:-1]]
            for r in table.splitlines()[2:]}

    def pair(a: str, b: str, key: str, fmt: str) -> str:
        return f"{fmt.format(v[a][key])} / {fmt.format(v[b][key])}"

    assert rows["ORT `quantize_dynamic` defaults / per-channel"] == [
        pair("ort_dynamic_default", "ort_dynamic_per_channel", "mean_cos", "{:.3f}"),
        pair("ort_dynamic_default", "ort_dynamic_per_channel", "min_cos", "{:.3f}"),
        pair("ort_dynamic_default", "ort_dynamic_per_channel", "speedup_vs_fp32", "{:.2f}×")]
    for label, name in (("edgeseal dynamic", "edgeseal_dynamic"),
                        ("ORT `quantize_static` defaults (int8 activations)", "ort_static_default"),
                        ("edgeseal static (int8 activations)", "edgeseal_static")):
        assert rows[label] == [f"{v[name]['mean_cos']:.3f}", f"{v[name]['min_cos']:.3f}",
                               f"{v[name]['speedup_vs_fp32']:.2f}×"], (label, rows[label])
