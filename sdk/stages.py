"""One stage pipeline: content-hashed steps with a cache, reported through one progress sink.

A stage is a named step with JSON-able ``inputs`` (its settings and the digests of what it reads) and a
function that returns its output files (``{name: bytes}``). Its key is the SHA-256 of the stage's name,
its inputs and the edgeseal code. With a cache, a stage whose key was seen before does not run: its
files come back byte for byte (damaged entries run again). Who runs stages through it:

- ``edgeseal build``: model -> compress -> seal -> verify -> audit for each target;
- ``edgeseal demo``: the built-in release recipe, through ``build``;
- ``edgeseal compress``: the whole recipe as one stage (model, data and recipe digests);
- ``edgeseal search``: every trial is a stage (the trial's settings, the base recipe, model and data).

Status lines go to the caller's sink (:class:`edgeseal.progress.Progress` ``.status`` in the CLI: rich
on a terminal, plain timestamped lines otherwise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .report.signing import sha256_hex
from .runtime.errors import EdgesealError

__all__ = ["StageCache", "StageRecord", "Stages", "code_version", "cache_key_bytes", "arrays_digest", "file_digest",
           "callable_digest", "content_inputs", "default_cache"]


def cache_key_bytes(obj: Any) -> bytes:
    """The bytes a stage key hashes: sorted-key compact JSON, anything else as ``str``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def arrays_digest(*arrays: np.ndarray | None) -> str:
    """SHA-256 over the arrays' dtypes, shapes and bytes (``None`` counts as a value of its own)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_digest(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (``None`` for no file)."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def callable_digest(ref: str) -> str:
    """What a ``'package.module:callable'`` reference says about the code it runs: edgeseal's own modules
    are covered by :func:`code_version`; a user's module by the SHA-256 of its source file, so editing a
    model factory runs its stages again."""
    module = ref.partition(":")[0]
    if module == "edgeseal" or module.startswith("edgeseal."):
        return "edgeseal"
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if origin is None or not Path(origin).is_file():
        return f"unresolved:{module}"  # the stage itself will say why it cannot import it
    return f"sha256:{file_digest(origin)}"


def content_inputs(value: Any, base: Path | None = None) -> Any:
    """A recipe (plain JSON-ready values) as stage inputs: every string naming an existing file also
    carries the file's SHA-256, every ``module:callable`` its :func:`callable_digest`."""
    if isinstance(value, dict):
        return {k: content_inputs(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [content_inputs(v, base) for v in value]
    if isinstance(value, str) and value:
        if _CALLABLE.match(value):
            return {"callable": value, "code": callable_digest(value)}
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if len(value) < 4096 and path.is_file():
            return {"file": value, "sha256": file_digest(path)}
    return value


def code_version() -> str:
    """What the cache keys say about the code: the checkout's source digest, else the installed version."""
    from .targets.runtime_env import checkout_root, source_digest

    root = checkout_root()
    if root is not None:
        return f"src:{source_digest(root)}"
    from importlib.metadata import version

    return f"edgeseal=={version('edgeseal')}"


def default_cache(verb: str) -> Path:
    """``$EDGESEAL_CACHE_DIR/<verb>``, else ``~/.cache/edgeseal/<verb>`` (created)."""
    from .targets.cache import cache_dir

    return cache_dir(verb)


class StageCache:
    """Content-addressed stage outputs: ``ROOT/<key[:2]>/<key>/<file>``; ``root=None`` caches nothing."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _dir(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def load(self, key: str) -> dict[str, bytes] | None:
        if self.root is None:
            return None
        d = self._dir(key)
        index = d / "index.json"
        if not index.is_file():
            return None
        files = {}
        for name, digest in json.loads(index.read_text()).items():
            data = (d / name).read_bytes() if (d / name).is_file() else b""
            if sha256_hex(data) != digest:  # damaged entry: run the stage again
                return None
            files[name] = data
        return files

    def store(self, key: str, files: dict[str, bytes]) -> None:
        if self.root is None:
            return
        final = self._dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            os.chmod(tmp / name, 0o600)  # plain models live here
        (tmp / "index.json").write_text(json.dumps({n: sha256_hex(d) for n, d in files.items()}, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)


@dataclasses.dataclass(frozen=True)
class StageRecord:
    target: str
    stage: str
    key: str
    cached: bool
    seconds: float
    outputs: dict[str, str]  # file name -> SHA-256
    main: str = ""  # the output the stage is for (shown in the table)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Stages:
    """Runs stages through a cache and records each one (ran or cached, seconds, output digests).

    ``total``: how many stages the caller expects, for the ``(3/13)`` in the status lines (0: not shown).
    """

    def __init__(self, cache: StageCache, status: Callable[[str], None] = print, *, total: int = 0,
                 code: str | None = None) -> None:
        self.cache, self.status, self.total = cache, status, total
        self.code = code_version() if code is None else code
        self.records: list[StageRecord] = []

    def key(self, name: str, inputs: dict[str, Any]) -> str:
        return sha256_hex(cache_key_bytes({"stage": name, "inputs": inputs, "code": self.code}))

    def lookup(self, scope: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, bytes] | None]:
        """The stage's key and its cached files (recorded as a cached stage), or None: then run it yourself
        and hand the files to :meth:`store` — for stages that run elsewhere (worker processes, Ray)."""
        key = self.key(name, inputs)
        files = self.cache.load(key)
        if files is not None:
            self._record(scope, name, key, True, 0.0, files)
        return key, files

    def store(self, scope: str, name: str, key: str, files: dict[str, bytes], seconds: float) -> None:
        """Keep the files of a stage that ran (see :meth:`lookup`) and record it."""
        self.cache.store(key, files)
        self._record(scope, name, key, False, seconds, files)

    def _record(self, scope: str, name: str, key: str, cached: bool, seconds: float, files: dict[str, bytes],
                main: str = "") -> None:
        outputs = {n: sha256_hex(d) for n, d in sorted(files.items())}
        main = next((n for n in outputs if main and n.startswith(main)), next(iter(outputs), ""))
        self.records.append(StageRecord(scope, name, key, cached, round(seconds, 2), outputs, main))

    def run(self, scope: str, name: str, inputs: dict[str, Any], fn: Callable[[], dict[str, bytes]],
            main: str = "") -> dict[str, bytes]:
        """The stage's files: from the cache when its key is there, else from ``fn()`` (then stored).

        An :class:`EdgesealError` from ``fn`` is recorded (with the stage's key) and raised again."""
        key = self.key(name, inputs)
        t0 = time.perf_counter()
        files = self.cache.load(key)
        cached = files is not None
        count = f"({len(self.records) + 1}/{self.total}) " if self.total else ""
        where = f"{count}[{scope}] {name}"
        if cached:
            self.status(f"{where}: cached ({key[:12]})")
        else:
            self.status(f"{where}: running")
            try:
                files = fn()
            except EdgesealError as exc:
                self.records.append(StageRecord(scope, name, key, False, round(time.perf_counter() - t0, 2), {},
                                                error=f"{type(exc).__name__}: {exc}"))
                raise
            self.cache.store(key, files)
        seconds = time.perf_counter() - t0
        self._record(scope, name, key, cached, seconds, files, main)
        if not cached:
            self.status(f"{where}: done in {round(seconds, 2):.1f} s")
        return files
