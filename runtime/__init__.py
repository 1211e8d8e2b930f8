"""edgeseal.runtime: the device side. Opens sealed packages and runs them.

Depends on numpy, cryptography and one inference backend — never on torch,
onnx or the converters (a test checks this in a fresh interpreter).

    >>> model = edgeseal.runtime.load("digits.eseal", key="device.pem", trusted=["publisher.pub"])
    >>> model.run(x)["logits"]
"""

from .errors import (
    ConfigError,
    EdgesealError,
    InternalError,
    InvalidInput,
    InvalidPackage,
    LimitExceeded,
    ModelClosed,
    NoMatchingKey,
    PackageExpired,
    PolicyError,
    RollbackRejected,
    UnsignedPackage,
    UnsupportedError,
    UntrustedPublisher,
)
from .format import Codec, Cipher, Kind, Manifest, Package
from .keys import BytesKey, EnvKey, FileKey, KeyProvider, Passphrase, RawKey
from .loader import Inspection, SealedModel, inspect, load, open_payload
from .quantio import FloatIO
from .tensors import QuantParams, TensorSpec

from .version import __version__

__all__ = [
    "load",
    "open_payload",
    "inspect",
    "Inspection",
    "SealedModel",
    "FloatIO",
    "Manifest",
    "Package",
    "Kind",
    "Codec",
    "Cipher",
    "TensorSpec",
    "QuantParams",
    "Passphrase",
    "RawKey",
    "KeyProvider",
    "FileKey",
    "EnvKey",
    "BytesKey",
    "EdgesealError",
    "ConfigError",
    "InvalidInput",
    "UnsupportedError",
    "InvalidPackage",
    "LimitExceeded",
    "ModelClosed",
    "UnsignedPackage",
    "UntrustedPublisher",
    "NoMatchingKey",
    "PolicyError",
    "RollbackRejected",
    "PackageExpired",
    "InternalError",
]
