"""The gate: limits from the recipe, checked against the seed-averaged summary of a report.

Every compressed artifact (and the ``combined`` attacker) is checked; the fp32
reference is what the others are compared with, so it is never gated itself.
A check compares a *mean over seeds* with its limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import GateConfig

__all__ = ["GateCheck", "evaluate_gate"]



@dataclass(frozen=True, kw_only=True)
class GateCheck:
    dataset: str
    artifact: str
    check: str
    value: float
    limit: float
    violated: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _checks(dname: str, s: dict[str, Any], gate: GateConfig, gate_eps_index: int) -> list[GateCheck]:
    out: list[GateCheck] = []

    def add(artifact: str, check: str, value: float, limit: float | None, upper: bool) -> None:
        if limit is None or value != value:  # switched off, or NaN (nothing measured)
            return
        out.append(GateCheck(dataset=dname, artifact=artifact, check=check, value=float(value), limit=float(limit),
                             violated=value > limit if upper else value < limit))

    arts = s["artifacts"]
    ref_name = next(iter(arts))  # the fp32 reference comes first
    fp32 = arts[ref_name]
    leak = {n: a for n, a in arts.items() if n != ref_name}
    if "combined" in s:
        leak["combined"] = s["combined"]
    for name, a in leak.items():
        for attack in a["mia"]:
            auc = a["mia"][attack]["auc"]["mean"]
            add(name, f"mia_auc[{attack}]", auc, gate.max_mia_auc, True)
            add(name, f"mia_auc_increase[{attack}]", auc - fp32["mia"][attack]["auc"]["mean"],
                gate.max_mia_auc_increase, True)
            add(name, f"tpr_at_1pct_fpr[{attack}]", a["mia"][attack]["tpr_at_1pct_fpr"]["mean"],
                gate.max_tpr_at_1pct_fpr, True)
    rob = s["robustness"]
    eps = rob["epsilons"][gate_eps_index]
    for name, c in rob["curves"].items():
        if name == ref_name:
            continue
        for attack in c:
            ref = rob["curves"][ref_name][attack]["mean"][gate_eps_index]
            mine = c[attack]["mean"][gate_eps_index]
            add(name, f"robust_accuracy_ratio[{attack}, eps={eps:g}]", mine / ref if ref > 0 else float("inf"),
                gate.min_robust_accuracy_ratio, False)
    for name, v in s.get("disagreement", {}).items():
        add(name, "disagreement_rate", v["rate"]["mean"], gate.max_disagreement_rate, True)
    if "attribution" in s:  # occlusion, LIME and SHAP: one check per method
        for name, per in s["attribution"].items():
            for method, v in per.items():
                add(name, f"explanation_spearman[{method}]", v["spearman_mean"]["mean"], gate.min_explanation_spearman,
                    False)
    else:
        for name, v in s.get("explanation", {}).items():
            add(name, "explanation_spearman", v["spearman_mean"]["mean"], gate.min_explanation_spearman, False)
    return out


def evaluate_gate(report: dict[str, Any], gate: GateConfig, *, gate_epsilon_index: int) -> dict[str, Any]:
    """Checks every limit of ``gate``; returns ``{"passed", "checks", "violations"}`` (JSON-ready)."""
    checks = [c for dname, d in report["datasets"].items() for c in _checks(dname, d["summary"], gate, gate_epsilon_index)]
    violations = [c.to_dict() for c in checks if c.violated]
    return {"passed": not violations, "limits": {k: v for k, v in gate.__dict__.items()},
            "checks": [c.to_dict() for c in checks], "violations": violations}
