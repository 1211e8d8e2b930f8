"""One classification-metrics implementation: compress's report and the device evaluation give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseal.runtime.errors import ConfigError
from edgeseal.runtime.metrics import classification_metrics, classification_report


def _cases():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    logits = rng.standard_normal((300, 10)) + 2.5 * np.eye(10)[labels]
    yield "ten classes", logits, labels
    absent = labels.copy()
    absent[absent == 7] = 3  # class 7 never a label, but predicted now and then
    logits_absent = logits.copy()
    logits_absent[:, 9] -= 100.0  # class 9 neither a label... (below) nor ever predicted
    absent[absent == 9] = 4
    yield "a class never present, one never present nor predicted", logits_absent, absent


@pytest.mark.parametrize("name,logits,labels", list(_cases()))
def test_compress_and_verify_call_sites_agree_and_match_scikit_learn(name, logits, labels):
    sklearn = pytest.importorskip("sklearn.metrics")
    from edgeseal.converters.metrics import classification_report as compress_report  # compress's import
    from edgeseal.runtime.evaluate import classification_metrics as verify_metrics  # verify's and the device's

    pred = logits.argmax(-1)
    report = compress_report(labels, pred, num_classes=logits.shape[-1])  # as sdk/compress/core.py calls it
    flat = verify_metrics(logits, labels)  # as sdk/verify/core.py and runtime.evaluate call it
    assert flat == report.to_metrics()
    assert flat["accuracy"] == sklearn.accuracy_score(labels, pred)
    p, r, f1, _ = sklearn.precision_recall_fscore_support(labels, pred, average="macro", zero_division=0)
    assert (flat["precision_macro"], flat["recall_macro"], flat["f1_macro"]) == pytest.approx((p, r, f1), abs=1e-12)
    per_f1 = sklearn.f1_score(labels, pred, average=None, labels=[c.label for c in report.per_class], zero_division=0)
    assert [c.f1 for c in report.per_class] == pytest.approx(list(per_f1), abs=1e-12)


def test_absent_classes_do_not_count_and_out_of_range_labels_are_refused():
    r = classification_report(np.array([0, 0, 2]), np.array([0, 2, 2]), num_classes=4)  # 1 and 3: nowhere
    assert [c.label for c in r.per_class] == [0, 2]
    assert r.macro_f1 == pytest.approx((2 / 3 + 2 / 3) / 2) and r.n == 3
    with pytest.raises(ConfigError, match="outside the model's 3 classes"):
        classification_report(np.array([0, 5]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ConfigError, match="2 labels but 1 predictions"):
        classification_report(np.array([0, 1]), np.array([0]))
    assert classification_metrics(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]))["f1_macro"] == 1.0
