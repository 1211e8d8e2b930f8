"""Keys: generation, PEM files (0600), and key providers.

Publisher keys are Ed25519 (they sign packages); device keys are X25519 (packages
are sealed to their public half). A :class:`KeyProvider` hands the runtime the
secret that opens a package; file, environment-variable and in-memory providers
ship here, and a platform keystore is one more class with a ``load()`` method.
No repr, message or log line ever contains key material.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from . import crypto
from .errors import ConfigError

__all__ = [
    "Passphrase",
    "RawKey",
    "KeyProvider",
    "FileKey",
    "EnvKey",
    "BytesKey",
    "Secret",
    "generate_publisher_key",
    "generate_device_key",
    "private_pem",
    "public_pem",
    "write_private_key",
    "write_secret_file",
    "raw_key_text",
    "write_public_key",
    "load_private_key",
    "load_public_key",
    "resolve_secret",
    "resolve_trusted",
    "fingerprint",
]


_KEYISH = re.compile(r"[A-Za-z0-9+/=_-]{40,}|[0-9a-fA-F]{64}")
_PATH_SUFFIXES = (".pem", ".pub", ".key", ".der", ".txt", ".json")
NOT_SHOWN = "<the text given, not shown: it may be key material>"


def looks_like_key_text(text: str) -> bool:
    """True for text shaped like key material (PEM, ``base64:...``, long base64/hex, several lines)."""
    stripped = text.strip()
    return ("-----BEGIN" in stripped or stripped.startswith("base64:") or "\n" in stripped
            or bool(_KEYISH.fullmatch(stripped)))


def shown(path: object) -> str:
    """A user-given key path as it may appear in a message: the path, or :data:`NOT_SHOWN` when the text could
    be key material (a PEM, a base64 key, a passphrase passed where a path was expected)."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    if isinstance(text, bytes) or looks_like_key_text(text) or len(text) > 1024 or not text.isprintable():
        return NOT_SHOWN
    try:
        exists = Path(text).exists()
    except (OSError, ValueError):
        exists = False
    if exists or "/" in text or os.sep in text or text.lower().endswith(_PATH_SUFFIXES):
        return text
    return NOT_SHOWN


def _refuse_key_text(text: str, what: str) -> None:
    """A ``str`` where a path is expected that is really key text: say so, without echoing it."""
    if looks_like_key_text(text):
        raise ConfigError(
            f"{what} was given key text as a str, where a str means a file path; the text is not shown. "
            "Pass the key itself as bytes (BytesKey(pem_bytes), RawKey(raw_32_bytes), load_public_key(pem_bytes)) "
            "or the path of the key file"
        )


@dataclass(frozen=True)
class Passphrase:
    """A passphrase that opens a passphrase slot. Its repr never shows the text."""

    text: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            raise ConfigError("passphrase must not be empty")

    def __repr__(self) -> str:
        return "Passphrase(<hidden>)"


@dataclass(frozen=True)
class RawKey:
    """A raw 256-bit key that opens a raw-key slot. Its repr shows only its fingerprint."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != crypto.KEY_SIZE:
            raise ConfigError(f"a raw key is exactly {crypto.KEY_SIZE} bytes, got {len(self.key)}")

    @classmethod
    def generate(cls) -> "RawKey":
        return cls(os.urandom(crypto.KEY_SIZE))

    @property
    def fingerprint(self) -> str:
        return crypto.raw_key_fingerprint(self.key).hex()

    def __repr__(self) -> str:
        return f"RawKey(fingerprint={self.fingerprint})"


Secret = Union[X25519PrivateKey, RawKey, Passphrase]


@runtime_checkable
class KeyProvider(Protocol):
    """Anything that can hand over the secret opening a package (a keystore, an HSM, a file)."""

    def load(self) -> Secret: ...


@dataclass(frozen=True)
class FileKey:
    """A secret in a file: a device private key PEM (optionally passphrase-protected) or ``base64:<32 bytes>``."""

    path: Path
    passphrase: str | None = field(default=None, repr=False)

    def load(self) -> Secret:
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {shown(self.path)}: {exc.strerror}") from None
        return BytesKey(data, self.passphrase, where=shown(self.path)).load()


@dataclass(frozen=True)
class EnvKey:
    """A secret in an environment variable: a device key PEM, or ``base64:<32 bytes>`` for a raw key."""

    variable: str
    passphrase: str | None = field(default=None, repr=False)

    def load(self) -> Secret:
        value = os.environ.get(self.variable)
        if not value:
            raise ConfigError(f"environment variable {self.variable} is not set or empty")
        return BytesKey(value.encode(), self.passphrase).load()


@dataclass(frozen=True)
class BytesKey:
    """A secret held in memory: PEM bytes of a device key, ``base64:...`` text or 32 raw bytes."""

    data: bytes = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)
    where: str = "key bytes"

    def __repr__(self) -> str:
        return f"BytesKey(<hidden>, where={self.where!r})"

    def load(self) -> Secret:
        data = self.data.strip()
        if len(self.data) == crypto.KEY_SIZE and not data.startswith(b"-----"):
            return RawKey(bytes(self.data))
        if data.startswith(b"base64:"):
            try:
                return RawKey(base64.b64decode(data[7:], validate=True))
            except ValueError:
                raise ConfigError(f"{self.where}: raw key after 'base64:' is not valid base64") from None
        key = _load_private_pem(data, self.passphrase, self.where)
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError(f"{self.where} holds a publisher (Ed25519) key; packages open with a device key")
        return key


def raw_key_text(key: RawKey) -> bytes:
    """The text form of a raw key file: ``base64:<44 chars>``."""
    return b"base64:" + base64.b64encode(key.key) + b"\n"


def generate_publisher_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def generate_device_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey | X25519PrivateKey, passphrase: str | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_pem(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(
    path: Path, key: Ed25519PrivateKey | X25519PrivateKey, passphrase: str | None = None, *, overwrite: bool = False
) -> None:
    """Write a private key as PEM, created with mode 0600 (never briefly world-readable)."""
    write_secret_file(path, private_pem(key, passphrase), overwrite=overwrite)


def write_secret_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Create ``path`` with mode 0600 and write ``data``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; choose another name or pass --force to overwrite") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


def write_public_key(path: Path, key: Ed25519PublicKey | X25519PublicKey, *, overwrite: bool = False) -> None:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; choose another name or pass --force to overwrite")
    path.write_bytes(public_pem(key))


def _load_private_pem(data: bytes, passphrase: str | None, where: str):
    try:
        return serialization.load_pem_private_key(data, passphrase.encode() if passphrase else None)
    except TypeError:
        if passphrase:
            raise ConfigError(f"{where}: the key is not encrypted; drop the passphrase") from None
        raise ConfigError(f"{where}: the key is passphrase-protected; give its passphrase") from None
    except ValueError:
        raise ConfigError(
            f"{where}: not a readable private key PEM, or the passphrase is wrong"
        ) from None
    except Exception:  # unsupported key types surface as other exception types in pyca
        raise ConfigError(f"{where}: not a supported private key (Ed25519 or X25519 PEM)") from None


def load_private_key(source: Path | str | bytes, passphrase: str | None = None):
    """An Ed25519 or X25519 private key from a PEM file path or PEM bytes."""
    if isinstance(source, (bytes, bytearray)):
        key = _load_private_pem(bytes(source), passphrase, "key bytes")
    else:
        if isinstance(source, str):
            _refuse_key_text(source, "load_private_key")
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {shown(path)}: {exc.strerror}") from None
        key = _load_private_pem(data, passphrase, shown(path))
    if not isinstance(key, (Ed25519PrivateKey, X25519PrivateKey)):
        raise ConfigError("only Ed25519 (publisher) and X25519 (device) keys are used by edgeseal")
    return key


def load_public_key(source: Path | str | bytes) -> Ed25519PublicKey | X25519PublicKey:
    """A public key from a PEM file, PEM bytes, or a private key PEM (its public half)."""
    if isinstance(source, (bytes, bytearray)):
        data, where = bytes(source), "key bytes"
    else:
        if isinstance(source, str):
            _refuse_key_text(source, "load_public_key")
        where = shown(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {where}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        return _load_private_pem(data, None, where).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError(f"{where}: not a public key PEM") from None
    if not isinstance(key, (Ed25519PublicKey, X25519PublicKey)):
        raise ConfigError(f"{where}: only Ed25519 and X25519 public keys are used by edgeseal")
    return key


def fingerprint(key: Ed25519PublicKey | X25519PublicKey | Ed25519PrivateKey | X25519PrivateKey) -> str:
    """The fingerprint the CLI prints and package slots carry."""
    if isinstance(key, (Ed25519PrivateKey, X25519PrivateKey)):
        key = key.public_key()
    raw = crypto.raw_public(key)
    if isinstance(key, X25519PublicKey):
        return crypto.x25519_fingerprint(raw).hex()
    return crypto.publisher_fingerprint(raw)


def resolve_secret(key: object):
    """Turn what a caller passed as ``key=`` into what :meth:`Package.content_key` takes."""
    if isinstance(key, KeyProvider):
        key = key.load()
    if isinstance(key, str):
        _refuse_key_text(key, "key=")
    if isinstance(key, (str, os.PathLike)):
        key = FileKey(Path(key)).load()
    if isinstance(key, X25519PrivateKey):
        return key
    if isinstance(key, RawKey):
        return key.key
    if isinstance(key, Passphrase):
        return key.text
    if isinstance(key, Ed25519PrivateKey):
        raise ConfigError("that is a publisher (Ed25519) key; packages open with a device key, raw key or passphrase")
    raise ConfigError(
        f"key must be an X25519 device key, RawKey, Passphrase, a key provider or a key file path, "
        f"not {type(key).__name__}"
    )


def resolve_trusted(trusted: object) -> list[bytes]:
    """Raw Ed25519 public keys from keys, private keys, raw 32 bytes or PEM file paths."""
    if trusted is None:
        return []
    if isinstance(trusted, (str, os.PathLike, bytes, Ed25519PublicKey, Ed25519PrivateKey)):
        trusted = [trusted]
    out = []
    for given in trusted:  # type: ignore[union-attr]
        item = given.public_key() if isinstance(given, Ed25519PrivateKey) else given
        if isinstance(item, (bytes, bytearray)) and len(item) == 32:
            out.append(bytes(item))
            continue
        if isinstance(item, str):
            _refuse_key_text(item, "trusted=")
        if isinstance(item, (str, os.PathLike, bytes, bytearray)):
            item = load_public_key(item if not isinstance(item, str) else Path(item))
        if not isinstance(item, Ed25519PublicKey):
            where = shown(given) if isinstance(given, (str, os.PathLike)) else type(given).__name__
            raise ConfigError(
                f"{where} is not a publisher key: trusted keys are Ed25519 public keys (edgeseal keygen publisher "
                "writes one as .pub); device (X25519) keys open packages, they do not sign them"
            )
        out.append(crypto.raw_public(item))
    return out
