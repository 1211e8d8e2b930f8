"""The one report model: every verb's report is an edgeseal.report.Report, and render/write give its
JSON, text and HTML page — checked here on a real compress report (the other kinds are checked in
their own tests: test_verify, test_build, test_search, tests/audit/test_audit_report)."""

from __future__ import annotations

import json

import pytest

from edgeseal.report import FORMATS, Report, render, write

torch = pytest.importorskip("torch")


def test_every_verbs_report_is_a_report_of_its_own_kind():
    from edgeseal.audit import AuditReport
    from edgeseal.compress import CompressReport
    from edgeseal.release import BuildResult
    from edgeseal.search import SearchReport
    from edgeseal.verify import VerificationReport

    classes = (CompressReport, VerificationReport, AuditReport, BuildResult, SearchReport)
    assert all(issubclass(c, Report) for c in classes)
    assert [c.kind for c in classes] == ["compress", "verify", "audit", "release", "search"]
    with pytest.raises(TypeError):
        Report()  # to_dict and text are required


@pytest.fixture(scope="module")
def compressed():
    from edgeseal.compress import compress
    from edgeseal.compress.recipe import recipe_from_dict
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn

    d = load_digits_split()
    model = train_digits_cnn(d, epochs=2, channels=(8, 16, 16), hidden=32, show_progress=False)
    recipe = recipe_from_dict({"latency_runs": 10, "quantize": {"mode": "static"}})
    return compress(model, recipe, calibration=d.x_val, eval=(d.x_test, d.y_test), show_progress=False)


def test_a_compress_report_in_every_form(compressed, tmp_path):
    report = compressed.report
    data = report.to_dict()
    assert json.loads(render(report, "json")) == json.loads(json.dumps(data))
    text = render(report, "text")
    assert text == report.render() + "\n"
    for stage in data["stages"]:  # the table names every stage with its measured size
        assert stage["stage"] in text and f"{stage['size_bytes']:,}" in text
    page = render(report, "html")
    assert page.startswith("<!doctype html>") and "<style>" in page and "edgeseal compress" in page
    assert f"{data['stages'][-1]['size_bytes']:,}" in page
    for suffix, fmt in ((".json", "json"), (".txt", "text"), (".md", "text"), (".html", "html")):
        assert write(report, tmp_path / f"r{suffix}").read_text() == render(report, fmt)
    assert write(report, tmp_path / "r.out", fmt="json").read_text() == render(report, "json")
    with pytest.raises(ValueError, match="suffix|give fmt"):
        write(report, tmp_path / "r.out")
    with pytest.raises(ValueError, match="json, text, html"):
        render(report, "pdf")
    assert FORMATS == ("json", "text", "html")
