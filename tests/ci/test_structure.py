"""Structure rules of the code base that a reviewer would otherwise have to remember.

- No module imports another module's private name (``from .x import _y``) or a private module of
  another package (``edgeseal.runtime.backends._z`` from outside ``backends``): a shared idea gets a
  public home instead.
- Every HTML report uses the one page style (``edgeseal.report.html``) and draws on Figure objects:
  nothing in the SDK imports pyplot or switches matplotlib's backend, so writing a report from a
  notebook or an application leaves the caller's matplotlib state alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# source folder -> the package it installs as (pyproject.toml's package-dir)
PACKAGES = {"sdk": "edgeseal", "converters": "edgeseal.converters", "runtime": "edgeseal.runtime",
            "targets": "edgeseal.targets"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> tuple[str, bool]:
    top = path.relative_to(ROOT).parts[0]
    parts = [p for p in path.relative_to(ROOT / top).with_suffix("").parts if p != "__init__"]
    return ".".join([PACKAGES[top], *parts]), path.name == "__init__.py"


def private_imports(source: str, module: str, is_package: bool) -> list[str]:
    """Every import in ``source`` (the code of ``module``) of another module's private name, or of a
    private module outside the package that owns it. Only edgeseal's own modules are judged."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        if node.level:
            base = (module if is_package else module.rsplit(".", 1)[0]).split(".")
            target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "edgeseal":
            continue
        for alias in node.names:
            if _private(alias.name):
                found.append(f"line {node.lineno}: {alias.name} from {target}")
        segments = target.split(".")
        for i, segment in enumerate(segments):
            owner = ".".join(segments[:i])
            if _private(segment) and not (module == owner or module.startswith(owner + ".")):
                found.append(f"line {node.lineno}: private module {target}")
    return found


def _sources() -> list[Path]:
    return [p for top in PACKAGES for p in sorted((ROOT / top).rglob("*.py")) if "jvm" not in p.parts]


def test_the_private_import_rule_sees_what_it_forbids():
    bad = "from .export import _quiet\nfrom edgeseal.runtime.backends._onnx_graph import fields\n"
    assert len(private_imports(bad, "edgeseal.converters.text", False)) == 2
    fine = ("from ._onnx_graph import spans as _spans\nfrom .export import quiet as _quiet\n"
            "from torch._export import converter\nfrom __future__ import annotations\n")
    assert private_imports(fine, "edgeseal.runtime.backends.x", False) == []


def test_no_module_imports_another_modules_private_name():
    stray = {}
    for path in _sources():
        module, is_package = _module_name(path)
        hits = private_imports(path.read_text(encoding="utf-8"), module, is_package)
        if hits:
            stray[path.relative_to(ROOT).as_posix()] = hits
    assert not stray, f"private names imported across modules (give the idea a public home): {stray}"


def _pyplot_or_backend_switch(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name == "matplotlib.pyplot" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib" and any(
                a.name == "pyplot" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib.pyplot":
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "matplotlib"):
            lines.append(node.lineno)
    return lines


def test_reports_draw_on_figures_without_pyplot_and_share_one_page_style():
    assert sorted(_pyplot_or_backend_switch("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n")) == [2, 3]
    pyplot, styles = {}, []
    for path in sorted((ROOT / "sdk").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        if lines := _pyplot_or_backend_switch(text):
            pyplot[rel] = lines
        if "<style" in text:
            styles.append(rel)
    assert not pyplot, f"pyplot or matplotlib.use() in the SDK (draw with edgeseal.report.html.figure): {pyplot}"
    assert styles == ["sdk/report/html.py"], f"page styles outside edgeseal.report.html: {styles}"


def test_a_report_figure_leaves_the_callers_matplotlib_state_alone():
    matplotlib = pytest.importorskip("matplotlib")
    import base64

    import matplotlib.pyplot as plt

    from edgeseal.report.html import figure, image_data

    backend, open_figures = matplotlib.get_backend(), plt.get_fignums()
    fig, axes = figure(1, 2, figsize=(4, 2))
    axes[0].plot([0, 1], [1, 0])
    png = base64.b64decode(image_data(fig))
    jpeg = base64.b64decode(image_data(fig, jpeg=True))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and jpeg[:2] == b"\xff\xd8"
    assert image_data(fig) == image_data(fig)  # no timestamp or version: equal figures, equal bytes
    assert matplotlib.get_backend() == backend and plt.get_fignums() == open_figures


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject maps folders to packages and lists each sub-package (no discovery): a new folder not
    listed there would be missing from the wheel while an editable install still finds it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = set()
    for top, package in PACKAGES.items():
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            if "jvm" in parts or any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            folders.add(".".join([package, *parts]))
    assert folders - listed == set(), f"package folders missing from pyproject.toml's packages: {folders - listed}"
    assert listed - folders == set(), f"pyproject.toml lists packages with no folder: {listed - folders}"
