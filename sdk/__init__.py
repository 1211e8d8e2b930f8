"""edgeseal: compress, seal, verify and run PyTorch/ONNX models on devices.

The safe layer is two calls::

    edgeseal.seal("model.onnx", publisher="publisher.pem", devices=["pi.pub"], out="model.eseal")
    model = edgeseal.load("model.eseal", key="pi.pem", trusted=["publisher.pub"])

The top-level namespace is lazy: ``import edgeseal`` (and so ``import
edgeseal.runtime`` on a device) executes no sdk code; each name below is
imported from its home the first time it is used. Importing ``edgeseal``
imports neither torch nor onnx; the compression recipes do, when called.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import TYPE_CHECKING, Any

# name -> module that defines it (relative to this package)
_EXPORTS = {
    "__version__": ".runtime.version",
    "seal": ".seal",
    "load": ".runtime",
    "open_payload": ".runtime",
    "inspect": ".runtime",
    "SealedModel": ".runtime",
    "Passphrase": ".runtime",
    "RawKey": ".runtime",
    "generate_publisher_key": ".runtime.keys",
    "generate_device_key": ".runtime.keys",
    "EdgesealError": ".runtime",
    "ConfigError": ".runtime",
    "InvalidInput": ".runtime",
    "InvalidPackage": ".runtime",
    "UnsupportedError": ".runtime",
}

__all__ = [name for name in _EXPORTS if name != "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeseal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


# Public names that are also submodule names (``edgeseal.seal`` the function, ``edgeseal/seal.py`` its
# module). Importing a submodule makes the import system bind it on the package; for these names that
# binding would shadow the function for everyone once any code ran ``from edgeseal.seal import ...``.
_SHADOWED = frozenset(name for name, home in _EXPORTS.items() if home == "." + name)


class _Namespace(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the module stays reachable as sys.modules["edgeseal.seal"]; the name stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Namespace


# Modules that moved when sdk/ was arranged by feature (0.4): the old name imports the new module (the
# same module object, so attributes and monkeypatching behave as before) with a DeprecationWarning.
MOVED = {
    "edgeseal.recipe": "edgeseal.compress.recipe",
    "edgeseal.build": "edgeseal.release.pipeline",
    "edgeseal.release_html": "edgeseal.release.html",
    "edgeseal.demo": "edgeseal.release.demo",
    "edgeseal.search_exec": "edgeseal.search.executors",
    "edgeseal.search_report": "edgeseal.search.report",
    "edgeseal.search_space": "edgeseal.search.space",
    "edgeseal.targets_cli": "edgeseal.cli.targets",
    "edgeseal.devices": "edgeseal.cli.devices",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        import warnings

        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import it from there", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        self._specs[spec.name] = module.__spec__  # the import system sets the alias spec on it next
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The new module ran when it was imported; give it back its own spec (name, file, loader).
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .runtime import (
        ConfigError,
        EdgesealError,
        InvalidInput,
        InvalidPackage,
        Passphrase,
        RawKey,
        SealedModel,
        UnsupportedError,
        inspect,
        load,
        open_payload,
    )
    from .runtime.version import __version__
    from .runtime.keys import generate_device_key, generate_publisher_key
    from .seal import seal
