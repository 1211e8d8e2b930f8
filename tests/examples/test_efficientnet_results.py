"""README's EfficientNet-Lite0 int8 table and bench/results/efficientnet_int8.md state the figures of
bench/results/efficientnet_int8.json (no model is run here)."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

ROWS = {  # README row label (start of the first cell) -> variant in the results JSON
    "ONNX Runtime `quantize_static` defaults": "ort_static_defaults",
    "**edgeseal int8 ONNX**": "edgeseal_onnx_int8",
    "ai-edge-quantizer default full-integer recipe": "aeq_default_int8",
    "**edgeseal int8 TFLite**": "edgeseal_tflite_int8",
}


def _result() -> dict:
    return json.loads((RESULTS / "efficientnet_int8.json").read_text())


def test_results_page_is_the_rendering_of_the_json():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import efficientnet_int8
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert (RESULTS / "efficientnet_int8.md").read_text() == efficientnet_int8.render(_result())


def test_readme_table_states_the_recorded_figures():
    readme = (ROOT / "README.md").read_text()
    variants = _result()["variants"]
    for label, key in ROWS.items():
        match = re.search(r"^\| " + re.escape(label) + r"[^|]*((?:\|[^|]+){5})\|", readme, re.M)
        assert match, label
        cells = [c.strip().strip("*").strip() for c in match.group(1).split("|")[1:]]
        v, f = variants[key], variants[key]["fidelity"]
        want = [f"{f['top1_agreement']:.1%}", f"{f['top5_overlap']:.1%}", f"{f['sqnr_db']:.1f} dB",
                f"{v['size_vs_own_fp32']:.1%}", f"{v['speedup_vs_own_fp32']:.2f}×"]
        got = cells[:4] + [cells[4].split(" ")[0].strip("*")]
        assert got == want, (label, got, want)


def test_readme_states_which_targets_were_met():
    readme = (ROOT / "README.md").read_text()
    targets = _result()["targets_met"]
    agreement_met = targets["onnx_int8_agreement>=0.99"] and targets["tflite_int8_agreement>=0.99"]
    section = readme[readme.index("**EfficientNet-Lite0 int8**"):]
    section = section[:section.index("**MiniLM int8**")]
    assert bool(re.search(r"\*\*Not met[^*]*: ≥ 99 % top-1 agreement\*\*", section)) == (not agreement_met)


def test_readme_noise_floor_figures_are_the_recorded_ones():
    """The README's reason for 99 % being out of reach quotes the bench's noise-floor measurements."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**EfficientNet-Lite0 int8**"):]
    section = " ".join(section[:section.index("**MiniLM int8**")].split())
    f = _result()["noise_floor"]
    assert f"agrees with itself on only {f['agreement_optimized_vs_unoptimized']:.1%}".replace("%", " %") in section
    assert f"each run flips {len(f['flipped_optimized'])} crops" in section
    assert len(f["flipped_optimized"]) == len(f["flipped_unoptimized"])
    assert f"only {len(f['flipped_in_both'])} of them the same" in section
    assert f"would take {f['iid_model_sqnr_db_for_99pct']} dB" in section
    below = f["crops_with_fp32_margin_below"]
    assert f"{below['0.1']} of the 300 crops are below 0.1, {below['0.05']} below 0.05" in section
    assert max(m for ms in f["fp32_margin_of_flipped"].values() for m in ms) < 0.25
