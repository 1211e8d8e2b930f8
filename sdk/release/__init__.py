"""Releases: the release recipe (``config``), ``edgeseal build`` (``pipeline``), its HTML page
(``html``) and the built-in demo release (``demo``).
"""

from __future__ import annotations

from .config import (
    ReleaseInfo,
    KeysSpec,
    TrainSpec,
    ReleaseModel,
    ReleaseData,
    Budget,
    TargetEntry,
    AuditSpec,
    ReleaseConfig,
    load_release,
    release_from_dict,
)
from .pipeline import (
    StageCache,
    StageRecord,
    BuildResult,
    build,
)
from .demo import (
    run_demo,
)

__all__ = ["ReleaseInfo", "KeysSpec", "TrainSpec", "ReleaseModel", "ReleaseData", "Budget", "TargetEntry",
           "AuditSpec", "ReleaseConfig", "load_release", "release_from_dict", "StageCache", "StageRecord",
           "BuildResult", "build", "run_demo"]
