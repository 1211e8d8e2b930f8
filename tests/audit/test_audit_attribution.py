"""LIME and SHAP (the maintained packages, black-box) beside occlusion: exactness on a linear model,
shared masks (identical models give identical attributions), drift of int8 vs a different model,
and the digits audit report with the attribution pictures."""

import dataclasses
import json
import re

import numpy as np
import pytest
from scipy.stats import spearmanr

from edgeseal.audit.artifacts import TorchArtifact
from edgeseal.audit.attribution import (
    AttributionSettings,
    Method,
    attribution_study,
    attributions,
    compose,
    group_map,
)
from edgeseal.audit.explain import feature_groups
from edgeseal.runtime.errors import ConfigError

pytest.importorskip("lime")
pytest.importorskip("shap")

GROUPS = feature_groups(64, (8, 8), 2)
ZERO = np.zeros(64, np.float32)


def test_compose_switches_exactly_the_off_groups_to_the_baseline():
    x = np.arange(64, dtype=np.float32)
    base = np.full(64, -1.0, np.float32)
    z = np.ones((2, 16))
    z[1, [0, 5]] = 0
    out = compose(x, z, GROUPS, base)
    np.testing.assert_array_equal(out[0], x)
    off = set(GROUPS[0].tolist()) | set(GROUPS[5].tolist())
    assert off == {0, 1, 8, 9, 18, 19, 26, 27}
    for j in range(64):
        assert out[1, j] == (-1.0 if j in off else x[j])
    pic = group_map(np.arange(16.0), GROUPS, 64, (8, 8))
    assert pic.shape == (8, 8) and pic[0, 0] == pic[1, 1] == 0 and pic[7, 7] == 15 and pic[2, 4] == 6


def test_shap_of_a_linear_model_is_the_occlusion_value_and_lime_ranks_agree(digits_linear):
    ds, split, lin = digits_linear
    art = TorchArtifact(name="fp32", kind="fp32", module=lin)
    x = ds.x[split.nonmembers[:8]]
    cls = art.predict(x).argmax(1)
    w = lin.weight.detach().numpy()
    # independent: for a linear score, switching a group off removes exactly sum_{i in group} w_ci * x_i
    exact = np.array([[w[c, g] @ xi[g] for g in GROUPS] for xi, c in zip(x, cls)])
    occ, _ = attributions(Method.OCCLUSION, art, x, cls, GROUPS, ZERO)
    shap_v, _ = attributions(Method.SHAP, art, x, cls, GROUPS, ZERO, AttributionSettings(shap_samples=100))
    np.testing.assert_allclose(occ, exact, atol=1e-4)
    np.testing.assert_allclose(shap_v, exact, atol=1e-4)  # additive model: Shapley value = own effect
    lime_v, r2 = attributions(Method.LIME, art, x, cls, GROUPS, ZERO, AttributionSettings(lime_samples=300))
    assert lime_v.shape == (8, 16) and len(r2) == 8 and min(r2) > 0.95  # a linear model is fit almost perfectly
    assert np.mean([spearmanr(a, b).statistic for a, b in zip(lime_v, exact)]) > 0.9


def test_kernel_shap_leaves_the_callers_numpy_random_state_alone(digits_linear):
    ds, _, lin = digits_linear
    art = TorchArtifact(name="fp32", kind="fp32", module=lin)
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    attributions("shap", art, ds.x[:2], np.array([0, 1]), GROUPS, ZERO, AttributionSettings(shap_samples=50))
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_drift_same_model_is_one_int8_is_small_a_different_model_is_large(digits_linear, digits_artifacts):
    import torch

    ds, split, _ = digits_linear
    x = ds.x[split.nonmembers[:12]]
    other = torch.nn.Linear(64, 10)
    with torch.no_grad():
        other.weight.copy_(torch.from_numpy(np.random.default_rng(0).normal(size=(10, 64)).astype(np.float32)))
    rnd = TorchArtifact(name="random", kind="x", module=other)
    settings = AttributionSettings(lime_samples=150, shap_samples=100, top_k=4, seed=7)
    study = attribution_study(digits_artifacts["fp32"], [digits_artifacts["fp32_onnx"], digits_artifacts["int8_sealed"],
                                                         rnd], x, groups=GROUPS, baseline=ZERO, settings=settings)
    assert [m.value for m in study.methods] == ["occlusion", "lime", "shap"]
    for m in ("occlusion", "lime", "shap"):
        same = study.drift["fp32-onnx"][m]
        assert min(same.spearman) > 0.99 and min(same.topk_overlap) == 1.0  # same masks: only float noise
        assert np.mean(study.drift["int8"][m].spearman) > 0.8
        assert np.mean(study.drift["random"][m].spearman) < 0.4
        # the reported numbers are recomputed from the stored maps with SciPy
        ref, art = study.maps[m]["fp32"], study.maps[m]["int8"]
        def ties(v):
            return np.where(np.abs(v) <= 1e-4 * np.abs(v).max(), 0.0, v)

        np.testing.assert_allclose(study.drift["int8"][m].spearman,
                                   [spearmanr(ties(a), ties(b)).statistic for a, b in zip(ref, art)], atol=1e-9)
    d = study.to_dict(pictures=2)
    assert d["drift"]["int8"]["lime"]["lime_r2_mean"] > 0.5 and d["drift"]["int8"]["shap"]["top_k"] == 4
    assert np.asarray(d["pictures"]["maps"]["shap"]["int8"]).shape == (2, 16)
    with pytest.raises(ConfigError, match="distinct"):
        attribution_study(digits_artifacts["fp32"], [digits_artifacts["fp32"]], x, groups=GROUPS, baseline=ZERO)


def test_explanation_config_is_validated():
    from edgeseal.audit.config import ExplanationConfig, config_from_mapping

    assert ExplanationConfig(methods=["lime"]).methods == ("lime",)
    with pytest.raises(ConfigError, match="methods"):
        ExplanationConfig(methods=("gradcam",))
    with pytest.raises(ConfigError, match="lime_samples"):
        ExplanationConfig(lime_samples=2)
    cfg = config_from_mapping({"explanation": {"methods": ["shap", "occlusion"], "shap_samples": 64, "pictures": 1}})
    assert cfg.explanation.methods == ("shap", "occlusion") and cfg.explanation.shap_samples == 64


@pytest.fixture(scope="module")
def digits_report():
    from edgeseal.audit.cli import quick_config
    from edgeseal.audit.config import AuditConfig, MembershipConfig
    from edgeseal.audit.pipeline import run_audit

    cfg = quick_config(AuditConfig(datasets=("digits",), variants=("int8", "pruned")))
    cfg = dataclasses.replace(cfg, membership=MembershipConfig(reference_models=2),
                              explanation=dataclasses.replace(cfg.explanation, examples=12, lime_samples=120,
                                                              shap_samples=80, pictures=2))
    return run_audit(cfg, progress=False)


def test_digits_audit_reports_lime_shap_drift_and_pictures(digits_report, tmp_path):
    from edgeseal.audit.config import GateConfig
    from edgeseal.audit.gate import evaluate_gate
    from edgeseal.audit.report import render_html, render_markdown

    d = digits_report["datasets"]["digits"]
    seed = d["seeds"][0]
    att = seed["attribution"]
    assert set(att["drift"]) == {"int8", "pruned"} and att["methods"] == ["occlusion", "lime", "shap"]
    for m in att["methods"]:
        assert att["drift"]["int8"][m]["spearman_mean"] > 0.9  # int8 keeps the explanation
        assert att["drift"]["int8"][m]["examples"] == 12
        assert -1 <= att["drift"]["pruned"][m]["spearman_mean"] <= 1
    # the occlusion row agrees with the older occlusion-only section (same inputs, same groups)
    assert att["drift"]["int8"]["occlusion"]["spearman_mean"] == pytest.approx(
        seed["explanation"]["int8"]["spearman_mean"])
    pics = d["summary"]["attribution_pictures"]
    assert pics["indices"] == seed["indices"]["explanation"][:2] and pics["image_shape"] == [8, 8]
    pool = np.asarray(d["pool_indices"])
    from edgeseal.audit.data import load_dataset

    full = load_dataset("digits")
    np.testing.assert_allclose(pics["inputs"], full.x[pool[pics["indices"]]], atol=1e-6)
    summary = d["summary"]["attribution"]
    assert summary["pruned"]["shap"]["spearman_mean"]["mean"] == pytest.approx(att["drift"]["pruned"]["shap"]["spearman_mean"])
    gate = evaluate_gate(digits_report, GateConfig(max_mia_auc_increase=None, min_explanation_spearman=0.95),
                         gate_epsilon_index=2)
    checks = {(c["artifact"], c["check"]): c for c in gate["checks"]}
    assert set(checks) == {(a, f"explanation_spearman[{m}]") for a in ("int8", "pruned")
                           for m in ("occlusion", "lime", "shap")}
    for (a, chk), c in checks.items():
        m = chk[chk.index("[") + 1 : -1]
        assert c["violated"] == (summary[a][m]["spearman_mean"]["mean"] < 0.95)
    page = render_html(digits_report)
    assert "LIME ρ" in page and "SHAP top-5" in page
    imgs = re.findall(r"<img alt='attributions digits' src='data:image/png;base64,([^']*)'", page)
    assert len(imgs) == 1 and len(imgs[0]) > 20_000
    md = render_markdown(digits_report)
    assert "| attribution drift vs fp32 | occlusion ρ" in md and "| pruned |" in md
    json.dumps(digits_report)  # JSON-ready


def test_channel_first_images_group_every_channel_of_a_patch():
    """The layout a colour crop (e.g. EfficientNet-Lite0's 3 x 224 x 224) uses: c x h x w, patch squares."""
    import torch

    groups = feature_groups(3 * 4 * 4, (3, 4, 4), 2)
    assert len(groups) == 4 and all(len(g) == 12 for g in groups)
    assert sorted(np.concatenate(groups).tolist()) == list(range(48))
    assert set(groups[0].tolist()) == {c * 16 + r * 4 + q for c in range(3) for r in range(2) for q in range(2)}
    with pytest.raises(ConfigError, match="image_shape"):
        feature_groups(48, (4, 4), 2)
    lin = torch.nn.Linear(48, 3)
    art = TorchArtifact(name="fp32", kind="fp32", module=lin)
    x = np.random.default_rng(1).random((2, 48)).astype(np.float32)
    cls = art.predict(x).argmax(1)
    w = lin.weight.detach().numpy()
    shap_v, _ = attributions("shap", art, x, cls, groups, np.zeros(48, np.float32), AttributionSettings(shap_samples=30))
    np.testing.assert_allclose(shap_v, [[w[c, g] @ xi[g] for g in groups] for xi, c in zip(x, cls)], atol=1e-4)
    assert group_map(shap_v[0], groups, 48, (3, 4, 4)).shape == (3, 4, 4)


def test_digits_attribution_pictures_render_in_headless_chromium(digits_report, tmp_path):
    import os

    from test_audit_report import _PROBE, CHROMIUM, _chromium

    if CHROMIUM is None:
        if os.environ.get("EDGESEAL_REQUIRE_CHROMIUM"):
            pytest.fail("EDGESEAL_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium not installed (CI installs it: apt-get install -y chromium)")
    from edgeseal.audit.report import render_html

    probe = tmp_path / "probe.html"
    probe.write_text(render_html(digits_report).replace("</body>", _PROBE))
    out = _chromium("--dump-dom", probe.as_uri(), tmp=tmp_path)
    m = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert m, f"chromium did not run the page: {out.stderr[-2000:]}"
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(images) == 4  # ROC, trade-off, robustness, attribution maps
    complete, w, h = images[-1]
    assert complete and w > 300 and h > 500  # 2 inputs x 3 methods rows, input + 3 artifact columns
