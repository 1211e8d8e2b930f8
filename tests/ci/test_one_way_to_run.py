"""One way to run a model: ONNX Runtime sessions and LiteRT interpreters are opened in runtime/backends only.

Every other place runs a model through the backend sessions (``converters.infer`` on the host,
``edgeseal.runtime.load`` on the device), so that quantization, batching and errors are the same
everywhere. Graph probes get their raw sessions from the backends too (``raw_session``, ``graph_reader``); the
only other place is a benchmark's plain-library baseline, listed below with the reason;
a new direct ``InferenceSession(...)`` or ``Interpreter(...)`` call anywhere else fails this test.
Tests are not scanned: they drive plain ORT/LiteRT on purpose, as the independent reference.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("runtime", "converters", "sdk", "targets", "examples", "bench")
CALLS = {"InferenceSession", "Interpreter"}
THE_ONE_PLACE = "runtime/backends/"
ALLOWED = {
    "bench/seal_load.py": "the plain onnxruntime.InferenceSession(bytes) baseline that sealed loading is measured against",
}


def _direct_calls(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in CALLS:
                lines.append(node.lineno)
    return lines


def _scan() -> dict[str, list[int]]:
    found = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/.venv/" in f"/{rel}" or "/build/" in f"/{rel}":
                continue
            lines = _direct_calls(path)
            if lines:
                found[rel] = lines
    return found


def test_sessions_are_opened_in_the_backends_and_the_allow_list_only():
    found = _scan()
    stray = {p: lines for p, lines in found.items() if not p.startswith(THE_ONE_PLACE) and p not in ALLOWED}
    assert not stray, (
        "direct InferenceSession(...)/Interpreter(...) outside runtime/backends: "
        + "; ".join(f"{p} line(s) {lines}" for p, lines in stray.items())
        + ". Run models with edgeseal.converters.infer.runner_for (host) or edgeseal.runtime.load; if this is a "
        "graph probe, put it in converters/probe.py; else add the file to ALLOWED with the reason.")
    assert any(p.startswith(THE_ONE_PLACE) for p in found)  # the scan does see the backends' own sessions


def test_every_allow_list_entry_is_still_needed():
    found = _scan()
    stale = sorted(p for p in ALLOWED if p not in found)
    assert not stale, f"no direct session call left in {stale}: remove them from ALLOWED"


def test_the_scan_finds_the_call_forms_it_forbids(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("import onnxruntime as ort\nfrom ai_edge_litert.interpreter import Interpreter\n"
                      "s = ort.InferenceSession(b'')\n\ni = Interpreter(model_content=b'')\n"
                      "# InferenceSession( in a comment\n'''Interpreter( in a docstring'''\n")
    assert _direct_calls(sample) == [3, 5]
