"""The release page shows verify's fidelity to fp32 (agreement / top-5 overlap / SQNR) per target."""

from edgeseal.release.pipeline import _verification_summary
from edgeseal.release.html import _fidelity_cell


def _verify_report(fidelity):
    return {"passed": True, "device": {"url": "local", "machine": "x86_64", "backend": "onnxruntime",
                                       "backend_version": "1.32"},
            "metrics": {"device": None, "reference": None}, "fidelity": fidelity,
            "comparison": {"device_vs_host": {"top1_agreement": None}, "device_vs_reference": {"top1_agreement": None}},
            "latency_ms": {"p50": 1.0, "p95": 2.0}, "load_seconds": 0.1, "peak_rss_mb": 50.0, "data": {"n_samples": 3}}


def test_fidelity_travels_from_the_verify_report_to_the_page():
    f = {"n": 3, "top1_agreement": 0.97, "top5_overlap": 0.936, "sqnr_db": 18.72, "mean_cosine": 0.99, "min_cosine": 0.98}
    summary = _verification_summary(_verify_report(f))
    assert summary["fidelity"] == f
    assert _fidelity_cell(summary["fidelity"]) == "0.9700 / 0.9360 / 18.7 dB"
    assert _fidelity_cell(_verification_summary(_verify_report(None))["fidelity"]) == "-"
    assert _fidelity_cell({**f, "sqnr_db": None}).endswith("identical")
