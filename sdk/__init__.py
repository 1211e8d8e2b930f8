"""edgeseal: compress, seal, verify and run PyTorch/ONNX models on devices.

The safe layer is two calls::

    edgeseal.seal("model.onnx", publisher="publisher.pem", devices=["pi.pub"], out="model.eseal")
    model = edgeseal.load("model.eseal", key="pi.pem", trusted=["publisher.pub"])

Importing ``edgeseal`` imports neither torch nor onnx; the compression recipes do,
when called.
"""

__version__ = "0.1.0"

from .runtime import (  # noqa: E402  (re-exported: the device API is part of the top level)
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
from .runtime.keys import generate_device_key, generate_publisher_key  # noqa: E402
from .seal import seal  # noqa: E402

__all__ = [
    "seal",
    "load",
    "open_payload",
    "inspect",
    "SealedModel",
    "Passphrase",
    "RawKey",
    "generate_publisher_key",
    "generate_device_key",
    "EdgesealError",
    "ConfigError",
    "InvalidInput",
    "InvalidPackage",
    "UnsupportedError",
]
