"""Open sealed packages: ``load`` a model, ``open_payload`` for a sealed dataset, ``inspect`` without a key."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import backends
from ._memory import PlainBuffer, read_file
from .errors import ConfigError, LimitExceeded, ModelClosed, UnsupportedError
from .format import DEFAULT_MAX_PLAINTEXT, DEFAULT_SCRYPT_BUDGET, Kind, Manifest, Package, max_package_size
from .keys import resolve_secret, resolve_trusted
from .tensors import TensorSpec, validate_inputs

__all__ = ["SealedModel", "load", "open_payload", "inspect", "Inspection"]

Source = str | os.PathLike | bytes | bytearray | memoryview


def _read(source: Source, max_plaintext: int = DEFAULT_MAX_PLAINTEXT) -> bytes | bytearray | memoryview:
    """The package bytes; a file larger than any package within ``max_plaintext`` can be is refused unread."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return source
    path = Path(source)
    try:
        with path.open("rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            limit = max_package_size(max_plaintext)
            if size > limit:
                raise LimitExceeded(
                    f"sealed package {path} is {size:,} bytes, more than a package within the max_plaintext "
                    f"limit of {max_plaintext:,} bytes can be ({limit:,}); pass a higher max_plaintext= "
                    "if you expect a model that large"
                )
            return read_file(f, size, limit)
    except FileNotFoundError:
        raise ConfigError(f"sealed package {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"sealed package {path} is a directory; give the .eseal file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read sealed package {path}: {exc.strerror}") from None


def _open(
    source: Source,
    key: Any,
    trusted: Any,
    allow_unsigned: bool,
    min_version: int | None,
    now: float | None,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
    scrypt_budget: int = DEFAULT_SCRYPT_BUDGET,
) -> tuple[Package, str | None, PlainBuffer]:
    if key is None:
        raise ConfigError("a key is needed to open the package: a device key, RawKey or Passphrase")
    for value, name in ((max_plaintext, "max_plaintext"), (scrypt_budget, "scrypt_budget")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
    secret = resolve_secret(key)
    anchors = resolve_trusted(trusted)
    package = Package.parse(_read(source, max_plaintext))
    publisher = package.authenticate(anchors, allow_unsigned=allow_unsigned)
    package.check_policy(min_version=min_version, now=now)
    package.check_size(max_plaintext)
    content_key = package.content_key(secret, scrypt_budget=scrypt_budget)
    return package, publisher, package.decrypt(content_key)


class SealedModel:
    """A model opened from a sealed package. ``run`` may be called from many threads at once.

    Models whose inputs or outputs are quantized integers (full-integer TFLite) take and return
    float32 by default, converted with each tensor's own scale and zero point
    (:class:`edgeseal.runtime.FloatIO`); ``inputs``/``outputs`` then say float32, and an input
    already in the integer dtype passes unchanged. ``load(..., raw=True)`` exchanges the integer
    tensors as they are.
    """

    def __init__(self, manifest: Manifest, session: Any, backend: str, publisher: str | None,
                 load_seconds: float, plain: PlainBuffer | None, raw: bool = False) -> None:
        from .quantio import FloatIO

        self.manifest = manifest
        self.backend = backend
        self.publisher = publisher
        self.load_seconds = load_seconds
        self.raw = raw
        self._session = session
        self._plain = plain  # kept only while the backend reads from it (LiteRT, ONNX weights in place)
        # The backend's specs are what it runs (load checked them against the manifest's); they
        # also know what an older manifest could not say (optional feeds, unknown rank).
        self.model_inputs: tuple[TensorSpec, ...] = session.inputs or manifest.inputs
        self.model_outputs: tuple[TensorSpec, ...] = session.outputs or manifest.outputs
        io = FloatIO(_Backend(self), raw=raw)
        self._io = io if io.quantized_io and not raw else None
        self.inputs: tuple[TensorSpec, ...] = io.inputs  # what callers exchange: float32 for quantized tensors
        self.outputs: tuple[TensorSpec, ...] = io.outputs
        self._state = threading.Condition()
        self._running = 0  # runs in flight; close() waits for them

    def run(self, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against the input specs, run, and return outputs by name.

        Raises :class:`ModelClosed` once :meth:`close` has begun, from any thread; a run
        already in flight when ``close`` is called finishes first.
        """
        if self._io is not None:
            return self._io.run(inputs)  # quantizes, validates against model_inputs, calls _run, dequantizes
        return self._run(validate_inputs(inputs, self.model_inputs))

    def _run(self, arrays: dict[str, Any]) -> dict[str, Any]:
        with self._state:
            session = self._session
            if session is None:
                raise ModelClosed(f"model {self.manifest.name!r} is closed; load it again to run it")
            self._running += 1
        try:
            return session.run(arrays)
        finally:
            with self._state:
                self._running -= 1
                self._state.notify_all()

    def close(self) -> None:
        """Release the backend session and wipe any plaintext still held. Waits for runs in flight; idempotent."""
        with self._state:
            session, self._session = self._session, None
            if session is None:
                return
            while self._running:
                self._state.wait()
        session.close()
        if self._plain is not None:
            self._plain.wipe()
            self._plain = None

    def __enter__(self) -> "SealedModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        outs = ", ".join(s.describe() for s in self.outputs)
        return (f"SealedModel({self.manifest.name!r} v{self.manifest.model_version}, {self.backend}, "
                f"inputs=[{ins}], outputs=[{outs}])")


class _Backend:
    """The loaded model as FloatIO sees it: the backend's own specs, and a run that honours close()."""

    def __init__(self, model: SealedModel) -> None:
        self.inputs, self.outputs, self.run = model.model_inputs, model.model_outputs, model._run


def load(
    source: Source,
    *,
    key: Any = None,
    trusted: Any = (),
    allow_unsigned: bool = False,
    min_version: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    now: float | None = None,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
    scrypt_budget: int = DEFAULT_SCRYPT_BUDGET,
    weights_in_place: bool = True,
    raw: bool = False,
) -> SealedModel:
    """Verify, decrypt in memory and load a sealed model.

    ``key``: an X25519 device private key, :class:`RawKey`, :class:`Passphrase`, a key
    provider, or the path of a device key PEM. ``trusted``: publisher public keys
    (objects, raw 32 bytes, or PEM paths). The signature is checked before any
    decryption; unsigned packages load only with ``allow_unsigned=True``.

    Resource limits (a :class:`LimitExceeded` names the one hit, before the work is done):
    ``max_plaintext`` bytes of model in memory (default 2 GiB; also bounds the file read),
    ``scrypt_budget`` scrypt work N*r*p over the passphrase slots tried (default 2**24,
    64 default-cost slots).

    ``weights_in_place`` (ONNX): ONNX Runtime reads the large weights straight from the decrypted
    buffer, which is kept (and wiped at :meth:`SealedModel.close`): a faster load, but the buffer
    stays in memory beside any weights ORT repacks (bench/results/seal_load.md, memory table). False:
    ORT copies the weights and the plaintext is wiped as soon as the session is built.

    ``raw``: exchange quantized integer inputs/outputs (full-integer TFLite) as integers instead of
    float32 (:class:`SealedModel`).
    """
    started = time.perf_counter()
    package, publisher, plain = _open(source, key, trusted, allow_unsigned, min_version, now, max_plaintext,
                                      scrypt_budget)
    manifest = package.manifest
    try:
        if manifest.kind is not Kind.MODEL:
            raise ConfigError(f"package {manifest.name!r} holds a {manifest.kind.value}, not a model; "
                              "use open_payload()")
        module = backends.select(manifest.content_format, backend)
        session = module.Session(plain.freeze(), threads, in_place=weights_in_place)
    except BaseException:
        plain.wipe()
        raise
    # LiteRT and ONNX Runtime's in-place weights (backends/_onnx_external.py) read the plaintext
    # for as long as the session lives: it is wiped at close(). Otherwise the backend owns a copy now.
    keeps_buffer = session.holds_buffer
    if not keeps_buffer:
        plain.wipe()
    try:
        _check_specs(manifest, session)
    except BaseException:
        plain.wipe()  # LiteRT's buffer, when the manifest and the model disagree
        raise
    return SealedModel(manifest, session, module.NAME, publisher, time.perf_counter() - started,
                       plain if keeps_buffer else None, raw=raw)


def _check_specs(manifest: Manifest, session: Any) -> None:
    """The manifest's inputs must name the model's inputs, in order, with the same types (shapes aside).

    Inputs the model may go without (optional ones, overridable initializers) may be absent from
    a manifest: writers before format 1's optional ``kind``/``optional`` members left them out.
    """
    if not manifest.inputs:
        return
    names = {s.name for s in manifest.inputs}
    declared = [_types(s) for s in manifest.inputs]
    actual = [_types(s) for s in session.inputs if s.name in names or not s.optional]
    if declared != actual:
        session.close()
        raise UnsupportedError(
            f"package manifest declares inputs {[s.describe() for s in manifest.inputs]} but the model takes "
            f"{[s.describe() for s in session.inputs]}; reseal the model"
        )


def _types(spec: TensorSpec | None) -> tuple:
    """Name, kind and element types of a spec, nested; not its shapes."""
    if spec is None:
        return ()
    return (spec.name, spec.kind, spec.dtype, spec.key, _types(spec.elem))


def open_payload(
    source: Source,
    *,
    key: Any,
    trusted: Any = (),
    allow_unsigned: bool = False,
    min_version: int | None = None,
    now: float | None = None,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
    scrypt_budget: int = DEFAULT_SCRYPT_BUDGET,
) -> tuple[Manifest, PlainBuffer]:
    """Verify and decrypt any package (e.g. a sealed evaluation set) into a wipeable in-memory buffer.

    Same limits as :func:`load`."""
    package, _, plain = _open(source, key, trusted, allow_unsigned, min_version, now, max_plaintext,
                              scrypt_budget)
    return package.manifest, plain


@dataclass(frozen=True)
class Inspection:
    """What can be learned about a package without its key."""

    size: int
    manifest: Manifest
    slots: tuple[str, ...]
    publisher: str | None
    signature: str  # "verified", "unsigned", "untrusted", "not checked", "invalid"
    format_version: int = 1  # the header's version (docs/format.md §1, §10)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "format_version": self.format_version,
            "manifest": self.manifest.to_dict(),
            "slots": list(self.slots),
            "publisher": self.publisher,
            "signature": self.signature,
        }


def inspect(source: Source, *, trusted: Iterable[Any] = (), max_plaintext: int = DEFAULT_MAX_PLAINTEXT) -> Inspection:
    """Read the cleartext parts; check the signature if ``trusted`` keys are given.

    Files larger than any package within ``max_plaintext`` are refused unread (:class:`LimitExceeded`)."""
    from .errors import InvalidPackage, UntrustedPublisher

    data = _read(source, max_plaintext)
    package = Package.parse(data)
    keys = resolve_trusted(trusted)
    if package.signature is None:
        status = "unsigned"
    elif not keys:
        status = "not checked"
    else:
        try:
            package.authenticate(keys)
            status = "verified"
        except UntrustedPublisher:
            status = "untrusted"
        except InvalidPackage:
            status = "invalid"
    return Inspection(len(data), package.manifest, tuple(s.describe() for s in package.slots),
                      package.publisher, status, package.header.version)
