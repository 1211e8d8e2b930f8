"""A runtime-only Python environment (edgeseal[onnx,tflite], no torch), built once and cached.

The ``local`` transport runs the device runner in it, so a verification proves the
runtime stands alone. The edgeseal wheel is built from this checkout when there is
one (and rebuilt when its sources change), else installed from the registry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Callable

from edgeseal.runtime.errors import UnsupportedError

from .cache import cache_dir

__all__ = ["checkout_root", "source_digest", "build_wheel", "ensure_runtime_env", "runtime_requirements",
           "requirement_name"]

# What a device runs: edgeseal's own requirements plus its [onnx] and [tflite] extras, never torch.
RUNTIME_EXTRAS = ("onnx", "tflite")
_PKG_DIRS = ("runtime", "sdk", "targets", "converters")


def requirement_name(requirement: str) -> str:
    """The normalized project name of a requirement string or wheel file name ("ai-edge-litert>=1.2" -> "ai_edge_litert")."""
    return re.match(r"[A-Za-z0-9._-]*[A-Za-z0-9]", requirement).group(0).replace("-", "_").replace(".", "_").lower()


def runtime_requirements() -> tuple[str, ...]:
    """edgeseal's base requirements and those of its runtime extras, as this checkout's pyproject.toml
    states them (or, for an installed edgeseal, its metadata): one list, so a new runtime dependency
    reaches every device environment."""
    root = checkout_root()
    if root is not None:
        from .profile import read_toml

        project = read_toml(root / "pyproject.toml", "edgeseal's pyproject")["project"]
        extras = project.get("optional-dependencies", {})
        return tuple(project.get("dependencies", [])) + tuple(r for e in RUNTIME_EXTRAS for r in extras.get(e, []))
    from importlib.metadata import requires

    out = []
    for line in requires("edgeseal") or ():
        requirement, _, marker = line.partition(";")
        if not marker.strip() or any(f'extra == "{e}"' in marker for e in RUNTIME_EXTRAS):
            out.append(requirement.strip())
    return tuple(out)


def checkout_root() -> Path | None:
    """The source checkout edgeseal was imported from (a dir with our pyproject.toml), if any."""
    import edgeseal.runtime

    root = Path(edgeseal.runtime.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "edgeseal"' in pyproject.read_text():
        return root
    return None


def source_digest(root: Path) -> str:
    """SHA-256 over the package sources and pyproject (what the wheel is built from)."""
    h = hashlib.sha256((root / "pyproject.toml").read_bytes())
    for d in _PKG_DIRS:
        for path in sorted((root / d).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".toml", ".json"):
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise UnsupportedError(f"{what} failed (exit {proc.returncode}):\n{tail}", reason=what)
    return proc


def build_wheel(out_dir: Path | None = None) -> Path:
    """Build (or reuse) the pure-Python edgeseal wheel for this checkout; its name carries the digest."""
    root = checkout_root()
    if root is None:
        raise UnsupportedError("edgeseal is not running from a source checkout; no wheel to build", reason="no checkout")
    digest = source_digest(root)
    out_dir = out_dir or cache_dir("wheels", digest)
    found = sorted(out_dir.glob("edgeseal-*.whl"))
    if found:
        return found[0]
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build = tmp / "build"  # copy the sources: building in place would leave build/ and egg-info behind
    build.mkdir(parents=True)
    shutil.copy2(root / "pyproject.toml", build)
    for extra in ("README.md", "LICENSE"):
        if (root / extra).is_file():
            shutil.copy2(root / extra, build)
    for d in _PKG_DIRS:
        if (root / d).is_dir():
            shutil.copytree(root / d, build / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(build)],
         "building the edgeseal wheel")
    wheel = next(tmp.glob("edgeseal-*.whl"))
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / wheel.name
    shutil.move(str(wheel), final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_runtime_env(*, status: Callable[[str], None] = lambda s: None) -> Path:
    """Path of the Python of the cached runtime-only venv, creating/updating it as needed."""
    env = cache_dir("envs") / f"runtime-py{sys.version_info.major}{sys.version_info.minor}"
    python = env / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    root = checkout_root()
    lock = root / ".ci" / "requirements.lock" if root is not None else None
    constraints = ["-c", str(lock)] if lock is not None and lock.is_file() else []
    requirements = runtime_requirements()
    wanted = "\n".join(requirements) + "\n" + (hashlib.sha256(lock.read_bytes()).hexdigest() if constraints else "")
    deps_ok = env / ".deps-ok"
    if not deps_ok.is_file() or deps_ok.read_text().strip() != wanted.strip():
        status(f"creating runtime-only environment {env}")
        shutil.rmtree(env, ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        status(f"installing {', '.join(requirement_name(r) for r in requirements)} (no torch)"
               + (", at the checkout's locked versions" if constraints else ""))
        _run([*pip, "install", *constraints, *requirements], "installing the runtime dependencies")
        deps_ok.write_text(wanted)
    if root is not None:
        stamp = source_digest(root)
        stamp_file = env / ".edgeseal-stamp"
        if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
            status("installing edgeseal from this checkout")
            wheel = build_wheel()
            _run([*pip, "install", "--no-deps", "--force-reinstall", str(wheel)], "installing edgeseal")
            (env / ".edgeseal-stamp").write_text(stamp + "\n")
    elif not (env / ".edgeseal-stamp").is_file():
        from edgeseal import __version__

        status(f"installing edgeseal=={__version__} from the registry")
        _run([*pip, "install", "--no-deps", f"edgeseal=={__version__}"], "installing edgeseal")
        (env / ".edgeseal-stamp").write_text(__version__ + "\n")
    return python


def clean_env() -> dict[str, str]:
    """A minimal environment for device-side processes: no PYTHONPATH or venv leaking in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {k: os.environ[k] for k in keep if k in os.environ}
