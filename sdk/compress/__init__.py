"""Compress a PyTorch model: prune, distil, quantize, cluster, export (``edgeseal compress``).

``core`` runs a recipe and writes its report; ``recipe`` is the TOML recipe as frozen dataclasses.
"""

from __future__ import annotations

from .core import (
    StageReport,
    CompressReport,
    CompressResult,
    manifest_summary,
    resolve_callable,
    compress,
    validate_recipe,
    load_model,
    load_npz,
    read_split,
    add_parser,
    main,
)
from .recipe import (
    CompressRecipe,
    load_recipe,
    recipe_from_dict,
)

__all__ = ["StageReport", "CompressReport", "CompressResult", "manifest_summary", "resolve_callable",
           "compress", "validate_recipe", "load_model", "load_npz", "read_split", "add_parser", "main",
           "CompressRecipe", "load_recipe", "recipe_from_dict"]
