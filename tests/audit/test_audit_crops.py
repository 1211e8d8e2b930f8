"""Attribution drift on colour crops (the EfficientNet-Lite0 bench's code path, on a tiny CNN so CI stays fast):
real photo crops, a real int8 ONNX and a real pruned ONNX, both sealed and run through the runtime; the HTML
page with one picture per crop rendered in headless Chromium."""

import copy
import json
import os
import re
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from edgeseal.audit.artifacts import OnnxArtifact
from edgeseal.audit.attribution import AttributionSettings
from edgeseal.audit.crops import explain_crops
from edgeseal.runtime.errors import ConfigError

pytest.importorskip("lime")
pytest.importorskip("shap")
pytest.importorskip("skimage")

PHOTOS = ("chelsea", "coffee", "camera")
CLASSES = ["zero", "one", "two", "three", "four"]


def _crops(names, seed):
    from edgeseal.converters.vision import photo_crops
    from edgeseal.runtime.preprocess import ImagePreprocess

    pre = ImagePreprocess(size=(32, 32), resize=0)
    return np.concatenate([photo_crops(n, 1, seed=seed, pre=pre) for n in names])


@pytest.fixture(scope="module")
def run():
    import torch

    from edgeseal.audit.variants import Sealer, export_onnx_checked, quantize_int8
    from edgeseal.converters.prune import prune_unstructured, UnstructuredPruneConfig

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(16, 5)).eval()
    crops = _crops(PHOTOS, seed=2)
    calib = _crops(("astronaut", "rocket", "moon", "gravel", "page", "cell", "text", "retina"), seed=1)
    fp32 = export_onnx_checked(net, calib)
    int8 = quantize_int8(fp32, calib, len(calib))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned_net = prune_unstructured(copy.deepcopy(net), UnstructuredPruneConfig(amount=0.5, gradual=False))
    pruned = export_onnx_checked(pruned_net, calib)
    sealer = Sealer()
    arts = [sealer.artifact(fp32, name="fp32-sealed", kind="fp32", summary={}),
            sealer.artifact(int8, name="int8", kind="int8", summary={}),
            sealer.artifact(pruned, name="pruned", kind="pruned", summary={})]
    ref = OnnxArtifact(name="fp32", kind="fp32", model=fp32)
    settings = AttributionSettings(lime_samples=80, shap_samples=80, top_k=3, seed=5)
    res = explain_crops(ref, arts, crops, patch=8, settings=settings, names=list(PHOTOS), class_names=CLASSES)
    return res, crops, {"fp32": fp32, "int8": int8, "pruned": pruned}


def test_crops_are_explained_on_a_grid_of_superpixels_with_shared_masks(run):
    res, crops, _ = run
    d = res.to_dict()
    assert d["groups"] == 16 and d["grid"] == [4, 4] and d["image_shape"] == [3, 32, 32]
    assert all(len(g) == 3 * 8 * 8 for g in res.groups)
    assert d["mask_seeds"] == [5, 6, 7] and d["methods"] == ["occlusion", "lime", "shap"]
    # the same model behind the runtime, with the same masks: identical explanations
    for m in d["methods"]:
        assert min(d["per_crop"]["fp32-sealed"][m]["spearman"]) > 0.999
        assert d["drift"]["fp32-sealed"][m]["topk_overlap_mean"] == 1.0
    assert set(d["noise_floor"]) == {"lime", "shap"}  # occlusion is exact: no sampling noise
    # every reported rho is recomputed here with SciPy from the maps (the JSON keeps them rounded to 1e-6)
    for a in ("int8", "pruned"):
        for m in d["methods"]:
            ref, art = res.study.maps[m]["fp32"], res.study.maps[m][a]
            np.testing.assert_allclose(d["maps"][m][a], art, atol=1e-6)

            np.testing.assert_allclose(d["per_crop"][a][m]["spearman"], [_rho(x, y) for x, y in zip(ref, art)],
                                       atol=1e-3)
    # calls and time recorded per model: LIME's masks and occlusion's g + 1 per crop at least
    assert d["model_calls"]["int8"] >= 3 * (1 + 17 + 80) and d["seconds"]["int8"] > 0
    assert d["model_calls"]["fp32"] > d["model_calls"]["int8"]  # the reference also runs the noise floor
    json.dumps(d)


def _rho(a, b):
    """SciPy's Spearman after the 1e-4 tie rule; 1 when both maps are flat, 0 when only one is (SciPy: NaN)."""
    a, b = (np.where(np.abs(v) <= 1e-4 * np.abs(v).max(), 0.0, v) for v in (a, b))
    flat = (np.ptp(a) == 0) + (np.ptp(b) == 0)
    return {2: 1.0, 1: 0.0}[flat] if flat else spearmanr(a, b).statistic


def test_top1_and_rank_match_onnxruntime_on_the_raw_files(run):
    import onnxruntime as ort

    res, crops, files = run
    d = res.to_dict()
    ref = ort.InferenceSession(files["fp32"], providers=["CPUExecutionProvider"]).run(None, {"input": crops})[0]
    cls = ref.argmax(1)
    assert [c["fp32_class"] for c in d["crops"]] == cls.tolist()
    assert [c["fp32_class_name"] for c in d["crops"]] == [CLASSES[c] for c in cls]
    p = np.exp(ref - ref.max(1, keepdims=True))
    np.testing.assert_allclose([c["fp32_probability"] for c in d["crops"]], (p / p.sum(1, keepdims=True))[range(3), cls],
                               rtol=1e-5)
    for a in ("int8", "pruned"):
        z = ort.InferenceSession(files[a], providers=["CPUExecutionProvider"]).run(None, {"input": crops})[0]
        assert [c["artifacts"][a]["top1"] for c in d["crops"]] == z.argmax(1).tolist()
        ranks = [int((-row).argsort(kind="stable").tolist().index(c) + 1) for row, c in zip(z, cls)]
        assert [c["artifacts"][a]["rank_of_fp32_class"] for c in d["crops"]] == ranks
        assert d["agreement"][a] == pytest.approx(np.mean(z.argmax(1) == cls))


def test_explain_crops_rejects_what_it_cannot_explain():
    ref = None
    with pytest.raises(ConfigError, match="channel-first"):
        explain_crops(ref, [], np.zeros((2, 32, 32), np.float32))
    with pytest.raises(ConfigError, match="patch=64"):
        explain_crops(ref, [], np.zeros((1, 3, 32, 32), np.float32), patch=64)
    with pytest.raises(ConfigError, match="names"):
        explain_crops(ref, [], np.zeros((1, 3, 32, 32), np.float32), patch=8, names=["a", "b"])


def test_crop_report_tables_are_the_json_figures(run):
    from edgeseal.audit.report import render_crops_html, render_crops_markdown

    res, crops, _ = run
    d = res.to_dict()
    page = render_crops_html(d, crops, title="tiny", notes=["a note"])
    md = render_crops_markdown(d, title="tiny", notes=["a note"])
    for a in ("int8", "pruned"):
        rho = np.asarray(d["per_crop"][a]["shap"]["spearman"])
        cell = f"{rho.mean():.3f} ± {rho.std(ddof=1):.3f}"
        assert cell in page and cell in md
    floor = f"{d['noise_floor']['lime']['spearman_mean']:.3f}"
    row = next(line for line in md.splitlines() if line.startswith("| fp32, other masks (noise floor) |"))
    assert row.split(" | ")[1:3] == ["exact", "exact"] and row.split(" | ")[3] == floor  # occlusion, then LIME rho
    first = d["crops"][0]
    assert f"{first['fp32_class_name']} ({first['fp32_probability']:.2f})" in page
    imgs = re.findall(r"<img alt='attributions ([^']*)' src='data:image/jpeg;base64,([^']*)'", page)
    assert [n for n, _ in imgs] == list(PHOTOS) and all(len(b) > 5_000 for _, b in imgs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<li>a note</li>" in page and "- a note" in md


def test_crop_pictures_render_in_headless_chromium(run, tmp_path):
    from test_audit_report import _PROBE, CHROMIUM, _chromium

    if CHROMIUM is None:
        if os.environ.get("EDGESEAL_REQUIRE_CHROMIUM"):
            pytest.fail("EDGESEAL_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium not installed (CI installs it: apt-get install -y chromium)")
    from edgeseal.audit.report import render_crops_html

    res, crops, _ = run
    probe = tmp_path / "probe.html"
    probe.write_text(render_crops_html(res.to_dict(), crops, title="tiny").replace("</body>", _PROBE))
    out = _chromium("--dump-dom", probe.as_uri(), tmp=tmp_path)
    m = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert m, f"chromium did not run the page: {out.stderr[-2000:]}"
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(images) == len(PHOTOS)  # one picture per crop
    for complete, w, h in images:
        assert complete and w > 400 and h > 300  # decoded: 3 method rows x (crop + 4 model columns)
