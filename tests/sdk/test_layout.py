"""sdk/ by feature: each feature is a package whose public names import from it, and the modules that
moved keep importing under their old names (same module object) with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import edgeseal

FEATURES = ("edgeseal.compress", "edgeseal.verify", "edgeseal.release", "edgeseal.search", "edgeseal.audit",
            "edgeseal.cli", "edgeseal.report")


@pytest.mark.parametrize("name", FEATURES)
def test_each_feature_is_a_package_whose_public_names_resolve(name):
    package = importlib.import_module(name)
    assert hasattr(package, "__path__"), f"{name} is a package (a folder), not a loose module"
    assert package.__all__
    for public in package.__all__:
        value = getattr(package, public)
        assert not isinstance(value, type(sys)), f"{name}.{public} is a submodule where a function/class is meant"


@pytest.mark.parametrize("old", sorted(edgeseal.MOVED))
def test_a_moved_module_imports_under_its_old_name_with_a_warning(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(edgeseal.MOVED[old])
    assert module.__spec__.name == module.__name__ == edgeseal.MOVED[old]  # its own spec, not the alias's
    assert any(issubclass(w.category, DeprecationWarning) and edgeseal.MOVED[old] in str(w.message) for w in caught)


def test_old_from_imports_keep_working():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from edgeseal.build import build as old_build
        from edgeseal.recipe import recipe_from_dict as old_recipe
    from edgeseal.compress import recipe_from_dict
    from edgeseal.release import build

    assert old_build is build and old_recipe is recipe_from_dict


def test_an_unknown_module_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("edgeseal.no_such_module")


def test_python_m_edgeseal_compress_still_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "edgeseal.compress", "compress", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "recipe" in out.stdout.lower(), out.stderr
