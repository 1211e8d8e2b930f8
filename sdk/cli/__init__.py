"""The ``edgeseal`` command line: ``app`` (parser, errors, exit codes, the runtime verbs), and the
``targets`` and ``devices`` verbs.
"""

from __future__ import annotations

from .app import (
    main,
    build_parser,
)

__all__ = ["main", "build_parser"]
