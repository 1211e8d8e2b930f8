"""The lock (.ci/requirements.lock) covers what pyproject.toml asks for, and the suite runs on it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / ".ci" / "requirements.lock"


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert m, f"lock line is not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def requirements(extra: str = "dev") -> list[Requirement]:
    """Every requirement [extra] pulls from pyproject.toml, following edgeseal[...] self-references."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    out, todo, seen = [Requirement(r) for r in project["dependencies"]], [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in extras[name]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "edgeseal":
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def test_lock_pins_every_requirement_of_the_dev_extra_within_its_range():
    pins = locked()
    env = default_environment()
    missing, outside = [], []
    for req in requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            missing.append(str(req))
        elif not req.specifier.contains(pin, prereleases=True):
            outside.append(f"{req} (locked {pin})")
    assert not missing, f"not in .ci/requirements.lock (run `bash .ci/lock`): {missing}"
    assert not outside, f"locked outside pyproject's range (run `bash .ci/lock`): {outside}"
    assert pins[canonicalize_name("torch")].local == "cpu", "the lock must hold the CPU build of torch"


def test_requirement_extras_are_locked_too():
    """ray[client] needs grpcio etc.: the extras' own requirements are pinned as well."""
    pins = locked()
    for req in requirements():
        for extra in req.extras:
            dist = metadata.distribution(req.name)
            for text in dist.requires or []:
                sub = Requirement(text)
                if sub.marker is not None and not sub.marker.evaluate({**default_environment(), "extra": extra}):
                    continue
                if sub.marker is not None and "extra" in str(sub.marker):
                    assert canonicalize_name(sub.name) in pins, f"{req.name}[{extra}] needs {sub.name}: not locked"


@pytest.mark.skipif(not (ROOT / ".venv" / ".edgeseal-lock").is_file() or Path(__import__("sys").prefix) != ROOT / ".venv",
                    reason="not running in the .venv that .ci/common.sh installs from the lock")
def test_the_suite_runs_on_exactly_the_locked_versions():
    wrong = []
    for name, version in locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        if installed != version:
            wrong.append(f"{name} {installed} != locked {version}")
    assert not wrong, wrong
