"""The quality gate's checks: each a named verdict with the value, the bound and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from legion_ci.artifact import Artifact
from legion_ci.evaluate import LOWER_IS_BETTER, better, evaluate
from legion_ci.spec import GateSpec


@dataclass(frozen=True)
class Check:
    """One verdict of the gate; `kind` groups checks in reports (threshold, comparison, test, data)."""

    kind: str
    name: str
    passed: bool
    message: str
    value: float | None = None
    bound: float | None = None
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_checks(gate: GateSpec, metrics: dict[str, float]) -> list[Check]:
    """Every threshold in the spec against the candidate's held-out metrics."""
    checks = []
    for metric, bound in sorted(gate.thresholds.items()):
        if metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            checks.append(Check("threshold", metric, False, f"metric {metric!r} was not measured (measured: {known})"))
            continue
        value = metrics[metric]
        if bound.min is not None and value < bound.min:
            checks.append(Check("threshold", metric, False,
                                f"{metric} {value:.4f} is below the minimum {bound.min} by {bound.min - value:.4f}",
                                value, bound.min))
        elif bound.max is not None and value > bound.max:
            checks.append(Check("threshold", metric, False,
                                f"{metric} {value:.4f} is above the maximum {bound.max} by {value - bound.max:.4f}",
                                value, bound.max))
        else:
            limits = " ".join(f"{k} {v}" for k, v in (("min", bound.min), ("max", bound.max)) if v is not None)
            checks.append(Check("threshold", metric, True, f"{metric} {value:.4f} within {limits}", value,
                                bound.min if bound.min is not None else bound.max))
    return checks


def default_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"


def load_holdout(art: Artifact) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(art.path / "holdout.csv")
    return frame.drop(columns=["target"]), frame["target"]


def comparison_check(gate: GateSpec, candidate: Artifact, production: Artifact | None,
                     require_improvement: bool = False) -> tuple[Check, dict[str, float]]:
    """Champion/challenger on the candidate's held-out rows; returns the check and production's metrics."""
    cmp = gate.compare_to_production
    metric = cmp.metric or default_metric(candidate.task)
    name = f"no regression vs production ({metric})"
    if production is None or not cmp.enabled:
        why = "no production version yet" if production is None else "comparison disabled in the spec"
        return Check("comparison", name, True, f"skipped: {why}", skipped=True), {}
    x, y = load_holdout(candidate)
    cand = evaluate(candidate.model, x, y, candidate.task)
    prod = evaluate(production.model, x, y, production.task)
    if metric not in cand or metric not in prod:
        return Check("comparison", name, False, f"metric {metric!r} cannot be computed for both models"), prod
    delta = better(metric, cand[metric], prod[metric])
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    detail = (f"candidate {metric} {cand[metric]:.4f} vs production {production.version} ({production.id[:8]}) "
              f"{prod[metric]:.4f} ({direction} is better)")
    if require_improvement and candidate.id != production.id and delta <= 0:
        return Check("comparison", name, False, f"{detail}: the candidate is no better", cand[metric], prod[metric]), prod
    if delta < -cmp.max_regression:
        return Check("comparison", name, False,
                     f"{detail}: regresses by {-delta:.4f}, more than the allowed {cmp.max_regression}",
                     cand[metric], prod[metric]), prod
    return Check("comparison", name, True, detail, cand[metric], prod[metric]), prod
