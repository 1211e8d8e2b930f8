"""Search compression settings for a Pareto front (``edgeseal search``): the space (``space``),
where trials run (``executors``, local or Ray) and the report (``report``).
"""

from __future__ import annotations

from .core import (
    search,
    pareto_front,
    dominates,
    remeasure_latency,
    digits_recipe,
    prepare_digits,
    SearchConfig,
    SearchSpace,
    Budget,
    Scheme,
    TrialConfig,
    SearchReport,
    TrialResult,
    load_search,
    add_parser,
)
from .executors import (
    local_ray_head,
)

__all__ = ["search", "pareto_front", "dominates", "remeasure_latency", "digits_recipe", "prepare_digits",
           "SearchConfig", "SearchSpace", "Budget", "Scheme", "TrialConfig", "SearchReport", "TrialResult",
           "load_search", "add_parser", "local_ray_head"]
