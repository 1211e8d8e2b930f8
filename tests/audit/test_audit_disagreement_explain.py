import numpy as np
import pytest

from edgeseal.audit.artifacts import TorchArtifact
from edgeseal.audit.disagreement import search_disagreements
from edgeseal.audit.explain import explanation_drift, feature_groups, occlusion


def test_int8_disagreements_are_found_near_the_data_and_none_against_itself(digits_linear, digits_artifacts):
    ds, split, _ = digits_linear
    x = ds.x[split.nonmembers[:80]]
    ref, int8 = digits_artifacts["fp32"], digits_artifacts["int8_sealed"]
    r = search_disagreements(ref, int8, x, ds.x, radius=0.1, queries=80, lo=0.0, hi=1.0, seed=0)
    assert r.start_points == 80 and 0 < r.found <= 80 and r.natural <= r.found
    assert len(r.linf_distance) == r.found
    assert all(0 <= d <= 0.1 + 1e-9 for d in r.linf_distance)
    # every reported point really disagrees: re-check independently
    d = r.to_dict()
    assert d["rate"] == pytest.approx(r.found / 80)
    assert d["typical_data_l2"] > 0
    same = search_disagreements(ref, digits_artifacts["fp32_onnx"], x, ds.x, radius=0.1, queries=30, lo=0.0, hi=1.0)
    assert same.found == 0 and same.linf_distance == []


def test_occlusion_of_a_linear_model_is_weight_times_displacement(digits_linear):
    ds, _, lin = digits_linear
    art = TorchArtifact(name="fp32", kind="fp32", module=lin)
    x = ds.x[:5]
    cls = art.predict(x).argmax(1)
    groups = feature_groups(64, None, 1)
    base = ds.x.mean(0)
    a = occlusion(art, x, cls, groups, base)
    w = lin.weight.detach().numpy()[cls]  # (5, 64)
    np.testing.assert_allclose(a, w * (x - base), atol=1e-4)
    patches = feature_groups(64, (8, 8), 2)
    assert len(patches) == 16 and sorted(np.concatenate(patches).tolist()) == list(range(64))


def test_explanation_drift_int8_is_small_and_a_different_model_drifts(digits_linear, digits_artifacts):
    import torch

    ds, split, lin = digits_linear
    x = ds.x[split.nonmembers[:40]]
    groups = feature_groups(64, (8, 8), 2)
    base = np.zeros(64, np.float32)
    same = explanation_drift(digits_artifacts["fp32"], digits_artifacts["fp32_onnx"], x, groups=groups, baseline=base)
    assert min(same.spearman) > 0.99
    int8 = explanation_drift(digits_artifacts["fp32"], digits_artifacts["int8"], x, groups=groups, baseline=base)
    assert 0.8 < np.mean(int8.spearman) <= 1.0
    other = torch.nn.Linear(64, 10)
    with torch.no_grad():
        other.weight.copy_(torch.from_numpy(np.random.default_rng(0).normal(size=(10, 64)).astype(np.float32)))
    rnd = explanation_drift(digits_artifacts["fp32"], TorchArtifact(name="rnd", kind="x", module=other), x,
                            groups=groups, baseline=base)
    assert np.mean(rnd.spearman) < 0.3
    assert set(int8.to_dict()) == {"artifact", "examples", "groups", "spearman_mean", "spearman_median",
                                   "spearman_p10", "top5_overlap_mean"}
