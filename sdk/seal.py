"""``edgeseal.seal``: the safe way to make a sealed package. Nonces, salts and keys are never the caller's job."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .runtime import backends, crypto
from .runtime.errors import ConfigError, InvalidPackage, UnsupportedError
from .runtime.format import (
    Cipher,
    Codec,
    DeviceRecipient,
    Kind,
    Manifest,
    PassphraseRecipient,
    RawKeyRecipient,
    write_package,
)
from .runtime.version import __version__
from .runtime.keys import Passphrase, RawKey, load_private_key, load_public_key, shown
from .runtime.tensors import TensorSpec

__all__ = ["seal", "detect_format"]

PRODUCER = f"edgeseal/{__version__}"


def detect_format(data: bytes, hint: str | None = None) -> str:
    """Content format of model bytes: ``npz`` for a zip, ONNX/TFLite from the bytes themselves
    (:func:`edgeseal.targets.detect_format`), else the file-name suffix ``hint``."""
    from .targets import detect_format as model_format

    if data[:4] == b"PK\x03\x04":
        return "npz"
    if data[:4] == b"ESCM":  # edgeseal.runtime.codebook.MODEL_MAGIC
        return "onnx+codebook"
    try:
        return model_format(data).value
    except ConfigError:
        suffix = Path(hint).suffix.lower().lstrip(".") if hint else ""
        if suffix in ("onnx", "tflite", "npz"):
            return suffix
        raise ConfigError("cannot tell the model format (neither ONNX nor TFLite); "
                          "pass content_format='onnx' or 'tflite' (CLI: --format)") from None


def _device_public(item: Any) -> bytes:
    if isinstance(item, X25519PrivateKey):
        item = item.public_key()
    if isinstance(item, X25519PublicKey):
        return crypto.raw_public(item)
    if isinstance(item, (bytes, bytearray)) and len(item) == 32:
        return bytes(item)
    if isinstance(item, (str, os.PathLike)):
        key = load_public_key(item if isinstance(item, str) else Path(item))
        if not isinstance(key, X25519PublicKey):
            raise ConfigError(f"{shown(item)} is a publisher (Ed25519) key; seal for device (X25519) public keys")
        return crypto.raw_public(key)
    raise ConfigError(f"a device key must be an X25519 public key, 32 raw bytes or a PEM path, not {type(item).__name__}")


def _publisher(publisher: Any, passphrase: str | None) -> Ed25519PrivateKey:
    if isinstance(publisher, (str, os.PathLike)):
        publisher = load_private_key(publisher if isinstance(publisher, str) else Path(publisher), passphrase)
    if not isinstance(publisher, Ed25519PrivateKey):
        raise ConfigError("the publisher key must be an Ed25519 private key (edgeseal keygen publisher)")
    return publisher


def _expiry(expires: Any, now: int) -> int | None:
    if expires is None:
        return None
    if isinstance(expires, dt.timedelta):
        return now + int(expires.total_seconds())
    if isinstance(expires, dt.datetime):
        if expires.tzinfo is None:
            raise ConfigError("expires must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
        return int(expires.timestamp())
    if isinstance(expires, int) and not isinstance(expires, bool):
        return expires
    raise ConfigError("expires must be a datetime, a timedelta or unix seconds")


def _specs(content_format: str, data: bytes) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Read input/output specs by loading the model with its backend here, when one is installed."""
    try:
        module = backends.select(content_format)
    except UnsupportedError:
        return (), ()
    try:
        session = module.Session(data, 1)
    except InvalidPackage:  # the codec's checks: raised for onnx+codebook payloads that do not decode
        raise ConfigError(f"the model is not a valid {content_format} payload (its codebook records or container "
                          "do not decode); build it with edgeseal.converters.cluster.codebook_model") from None
    try:
        return session.inputs, session.outputs
    finally:
        session.close()


def seal(
    model: bytes | str | os.PathLike,
    *,
    publisher: Any = None,
    publisher_passphrase: str | None = None,
    devices: Iterable[Any] = (),
    passphrase: str | Passphrase | None = None,
    raw_keys: Iterable[bytes | RawKey] = (),
    unsigned: bool = False,
    name: str | None = None,
    version: int = 1,
    expires: Any = None,
    cipher: str | Cipher = "auto",
    compression: str | Codec = Codec.NONE,
    digest: str | None = None,
    target: str | None = None,
    kind: str | Kind = Kind.MODEL,
    content_format: str | None = None,
    compression_summary: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    mask: Any = None,
    out: str | os.PathLike | None = None,
    now: float | None = None,
) -> bytes:
    """Encrypt, bind and sign a model (or dataset) for the given devices/passphrase/raw keys.

    Returns the package bytes; with ``out`` also writes them there. With a
    ``target``, the model must be in the target's format and use only operators
    its runtime runs (else UnsupportedError names the op), and ``cipher="auto"``
    takes the target's cipher (ChaCha20-Poly1305 for CPUs without AES
    instructions, such as the Raspberry Pi 4); otherwise AES-256-GCM.

    A data set (``kind="dataset"``) must be an ``.npz``; ``mask`` (a
    :class:`edgeseal.mask.MaskConfig`) blanks its sensitive columns/pixels or
    drops arrays *before* encryption, and the manifest's ``masking`` metadata
    says which (never the values).

    ``digest`` is format v2's per-chunk digest: ``"blake3"`` (the default), or ``"sha-256"`` /
    ``"blake2b-256"`` for readers that predate BLAKE3 (docs/COMPATIBILITY.md).
    """
    hint = None
    if isinstance(model, (str, os.PathLike)):
        hint = str(model)
        try:
            model = Path(model).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read model file {hint}: {exc.strerror}") from None
    data = bytes(model)
    try:
        kind, codec = Kind(kind), Codec(compression)
    except ValueError:
        raise ConfigError(f"kind must be one of {[k.value for k in Kind]} and compression one of "
                          f"{[c.value for c in Codec]}; got kind={kind!r}, compression={compression!r}") from None
    if kind is Kind.DATASET:  # an .npz the device-side evaluation can read; masked here, before encryption
        from .mask import prepare_dataset, summary_text

        if content_format not in (None, "npz"):
            raise ConfigError(f"a data set is sealed as an .npz, not {content_format!r}; save it with numpy.savez")
        data, masking = prepare_dataset(data, mask)
        content_format = "npz"
        if masking is not None:
            metadata = {**dict(metadata or {}), "masking": summary_text(masking)}
    elif mask is not None:
        raise ConfigError("masking applies to data sets: seal the .npz with kind='dataset' (CLI: --dataset)")
    content_format = content_format or detect_format(data, hint)
    if kind is Kind.MODEL and content_format == "npz":
        raise ConfigError(f"{hint or 'the input'} is an .npz data set, not a model: seal it as a data set "
                          "(kind='dataset'; CLI: edgeseal seal DATA.npz --dataset)")
    if publisher is None and not unsigned:
        raise ConfigError("sign the package with a publisher key (publisher=...), or pass unsigned=True")
    signer = None if publisher is None else _publisher(publisher, publisher_passphrase)

    recipients: list = [DeviceRecipient(_device_public(d)) for d in devices]
    if passphrase is not None:
        text = passphrase.text if isinstance(passphrase, Passphrase) else passphrase
        recipients.append(PassphraseRecipient(text))
    recipients += [RawKeyRecipient(k.key if isinstance(k, RawKey) else bytes(k)) for k in raw_keys]
    if not recipients:
        raise ConfigError("seal for at least one device key, a passphrase or a raw key")

    profile = None
    if target is not None:
        from .targets import get_profile, require_supported

        profile = get_profile(target)
        if kind is Kind.MODEL:
            require_supported(data, profile)  # refuses a model the target's runtime cannot run, naming the op

    created = int(time.time() if now is None else now)
    inputs, outputs = _specs(content_format, data) if kind is Kind.MODEL else ((), ())
    manifest = Manifest(
        kind=kind,
        content_format=content_format,
        name=name or (Path(hint).stem if hint else "model"),
        model_version=version,
        inputs=inputs,
        outputs=outputs,
        target=None if profile is None else profile.name,
        compression=dict(compression_summary or {}),
        metadata=dict(metadata or {}),
        created_at=created,
        expires_at=_expiry(expires, created),
        producer=PRODUCER,
    )
    package = write_package(data, manifest, recipients, signer, cipher=_cipher(cipher, profile),
                            codec=codec, digest=digest)
    if out is not None:
        Path(out).write_bytes(package)
    return package


def _cipher(cipher: str | Cipher, profile: Any) -> Cipher:
    if cipher != "auto":
        try:
            return Cipher(cipher)
        except ValueError:
            raise ConfigError(f"cipher must be 'auto' or one of {[c.value for c in Cipher]}, not {cipher!r}") from None
    return Cipher(profile.cipher) if profile is not None else Cipher.AES_256_GCM
