"""The one error hierarchy of edgeseal. Torch-free: the device runtime raises these.

    EdgesealError
    ├── ConfigError          a setting, file or argument the user gave is wrong    (CLI exit 2)
    │   └── InvalidInput     tensors handed to ``run`` do not match the model's specs
    │   └── ModelClosed      ``run`` on a model that was closed (by this or another thread)
    ├── UnsupportedError     valid request this build, backend or target cannot do (CLI exit 2)
    │   └── LimitExceeded    the package needs more than a resource limit the caller set (raise it)
    ├── InvalidPackage       the package does not authenticate                     (CLI exit 3)
    │   ├── UnsignedPackage      no signature, and unsigned packages were not allowed
    │   ├── UntrustedPublisher   signed by a key the caller does not trust
    │   └── NoMatchingKey        no key slot is addressed to the key given
    ├── PolicyError          authentic, but refused by the caller's policy          (CLI exit 4)
    │   ├── RollbackRejected     model version below the caller's floor
    │   └── PackageExpired       past the expiry the publisher sealed in
    ├── DeviceError          a device cannot be reached, is not built, or cannot run (CLI exit 5)
    └── InternalError        a bug in edgeseal                                      (CLI exit 70)

Every failure that depends on a secret (an AEAD tag, a signature check, a slot
that will not unwrap, a malformed structure) is a bare ``InvalidPackage`` with
one fixed message, so code and attackers learn nothing from which check failed.
The three subclasses only report facts anyone can read off the cleartext file.
"""

from __future__ import annotations

__all__ = [
    "EdgesealError",
    "ConfigError",
    "InvalidInput",
    "ModelClosed",
    "UnsupportedError",
    "LimitExceeded",
    "InvalidPackage",
    "UnsignedPackage",
    "UntrustedPublisher",
    "NoMatchingKey",
    "PolicyError",
    "RollbackRejected",
    "PackageExpired",
    "DeviceError",
    "InternalError",
]


class EdgesealError(Exception):
    """Base of every error edgeseal raises on purpose."""

    exit_code = 1


class ConfigError(EdgesealError):
    """A setting, file or argument given by the user is wrong; the message names it and the fix."""

    exit_code = 2


class InvalidInput(ConfigError):
    """Input tensors do not match the model's input specs (name, dtype or shape)."""


class ModelClosed(ConfigError):
    """``run`` was called on a :class:`SealedModel` after ``close`` (possibly from another thread)."""


class UnsupportedError(EdgesealError):
    """A valid request that this build, backend or target cannot carry out."""

    exit_code = 2

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class LimitExceeded(UnsupportedError):
    """Opening the package needs more memory or work than a limit the caller set; the message names the limit
    (``max_plaintext``, ``scrypt_budget``) and how to raise it. Checked before the work is done."""


class InvalidPackage(EdgesealError):
    """The package failed authentication: damaged, modified, or not openable with the key given.

    Deliberately opaque: the same class and message for a bad tag, a bad
    signature, a slot that does not unwrap and a malformed structure.
    """

    exit_code = 3
    default_message = "sealed package is invalid: it is damaged, was modified, or the key does not open it"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class UnsignedPackage(InvalidPackage):
    """The package carries no publisher signature and the caller did not allow unsigned packages."""

    default_message = (
        "sealed package is not signed; pass trusted publisher keys, or allow_unsigned=True "
        "(CLI: --allow-unsigned) if you really mean to load unsigned models"
    )


class UntrustedPublisher(InvalidPackage):
    """The package is signed by a publisher key that is not among the trusted keys."""


class NoMatchingKey(InvalidPackage):
    """No key slot of the package is addressed to the key that was given."""


class PolicyError(EdgesealError):
    """The package is authentic but the caller's policy refuses it."""

    exit_code = 4


class RollbackRejected(PolicyError):
    """The model version is below the minimum version the caller accepts."""


class PackageExpired(PolicyError):
    """The package is past the expiry time its publisher sealed into it."""


class DeviceError(EdgesealError):
    """A device cannot be reached, refuses the credentials, is not built yet, or cannot run the runtime."""

    exit_code = 5

    def __init__(self, message: str, *, reason: str = "device") -> None:
        super().__init__(message)
        self.reason = reason


class InternalError(EdgesealError):
    """A bug in edgeseal. Please report it with the message."""

    exit_code = 70
