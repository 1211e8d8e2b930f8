"""Target profiles, operator checks and device transports.

>>> from edgeseal.targets import get_profile, require_supported
>>> rpi4 = get_profile("rpi4")
>>> rpi4.cipher, rpi4.quantization.format.value
('chacha20-poly1305', 'qdq')

Transports live in :mod:`edgeseal.targets.transports` (imported on demand).
"""

from .ops import OpCheck, check_model, detect_format, model_ops, require_supported
from .profile import (
    read_toml,
    ModelFormat,
    OpSet,
    QuantFormat,
    QuantScheme,
    Runtime,
    TargetProfile,
    get_profile,
    list_profiles,
    load_profile_file,
    search_path,
)

__all__ = [
    "read_toml",
    "ModelFormat",
    "OpCheck",
    "OpSet",
    "QuantFormat",
    "QuantScheme",
    "Runtime",
    "TargetProfile",
    "check_model",
    "detect_format",
    "get_profile",
    "list_profiles",
    "load_profile_file",
    "model_ops",
    "require_supported",
    "search_path",
]
