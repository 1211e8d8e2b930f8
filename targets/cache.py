"""Where edgeseal keeps what it builds once: runtime-only environments, device roots, wheels."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$EDGESEAL_CACHE_DIR`` or ``$XDG_CACHE_HOME/edgeseal`` (``~/.cache/edgeseal``), created on use."""
    base = os.environ.get("EDGESEAL_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "edgeseal"
    path = Path(base).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
