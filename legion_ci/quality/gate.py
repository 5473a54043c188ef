"""The quality gate's checks on a candidate: data, thresholds, the comparison with production, the schema."""

from __future__ import annotations

import numpy as np
import pandas as pd

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ArtifactError
from legion_ci.core.manifest import InputSchema
from legion_ci.core.spec import CompareSpec, GateSpec
from legion_ci.quality.checks import Check, bound_check
from legion_ci.quality.metrics import LOWER_IS_BETTER, better, evaluate

HOLDOUT = "holdout.csv"
NO_IMPROVEMENT = "no-improvement"  # Check.code of a retrain's candidate that does not beat production


def threshold_checks(gate: GateSpec, metrics: dict[str, float]) -> list[Check]:
    """Every threshold in the spec against the candidate's metrics (held-out ones and any train.py logged)."""
    checks = []
    for metric, bound in sorted(gate.thresholds.items()):
        if metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            checks.append(
                Check(
                    "threshold",
                    metric,
                    False,
                    f"gate.thresholds.{metric}: metric {metric!r} was not measured (measured: {known})",
                )
            )
            continue
        checks.append(bound_check("threshold", metric, metric, float(metrics[metric]), bound.min, bound.max))
    return checks


def default_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"


def load_holdout(art: Artifact) -> tuple[pd.DataFrame, pd.Series]:
    """The held-out rows the train stage kept beside the model: features and target."""
    file = art.path / HOLDOUT
    try:
        frame = pd.read_csv(file)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{file}: cannot read the held-out split: {exc}") from None
    if "target" not in frame.columns:
        raise ArtifactError(f"{file}: no 'target' column (columns: {', '.join(frame.columns)})")
    return frame.drop(columns=["target"]), frame["target"]


def comparison_check(
    gate: GateSpec,
    candidate: Artifact,
    production: Artifact | None,
    require_improvement: bool = False,
    metrics: tuple[dict[str, float], dict[str, float] | None] | None = None,
) -> tuple[Check, dict[str, float]]:
    """Champion/challenger on the candidate's held-out rows; returns the check and production's metrics.

    `metrics` (candidate's, production's) skips evaluating again when the caller already has them.
    """
    cmp = gate.compare_to_production
    metric = cmp.metric or default_metric(candidate.task)
    name = f"no regression vs production ({metric})"
    if production is None or not cmp.enabled:
        why = "no production version yet" if production is None else "gate.compare_to_production.enabled is false"
        return Check("comparison", name, True, f"skipped: {why}", skipped=True), {}
    cand, prod = metrics if metrics is not None else evaluate_both(candidate, production)
    if prod is None:
        missing = sorted(set(production.feature_names) - set(candidate.feature_names))
        why = (
            f"production {production.version} ({production.id[:8]}) needs features {missing} that the "
            "candidate's held-out rows lack"
        )
        if gate.allow_schema_change:
            return Check("comparison", name, True, f"skipped: {why} (schema changed on purpose)", skipped=True), {}
        return Check("comparison", name, False, why), {}
    if metric not in cand or metric not in prod:
        return Check(
            "comparison",
            name,
            False,
            f"gate.compare_to_production.metric: {metric!r} cannot be computed "
            f"for both models (candidate has {', '.join(sorted(cand))})",
        ), prod
    delta = better(metric, cand[metric], prod[metric])
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    detail = (
        f"candidate {metric} {cand[metric]:.4f} vs production {production.version} ({production.id[:8]}) "
        f"{prod[metric]:.4f} ({direction} is better)"
    )
    margin = delta + cmp.max_regression
    if require_improvement and candidate.id != production.id:
        short = improvement_shortfall(cmp, metric, delta, cand, prod)
        if short is not None:
            return Check(
                "comparison",
                name,
                False,
                f"{detail}: {short}",
                cand[metric],
                prod[metric],
                margin=delta,
                code=NO_IMPROVEMENT,
            ), prod
        if abs(delta) < TIE:
            how = tie_decided(cmp, cand, prod)
            return Check(
                "comparison", name, True, f"{detail}: a tie, {how}", cand[metric], prod[metric], margin=margin
            ), prod
    if delta < -cmp.max_regression:
        return Check(
            "comparison",
            name,
            False,
            f"{detail}: regresses by {-delta:.4f}, more than the allowed {cmp.max_regression} by {-margin:.4f}",
            cand[metric],
            prod[metric],
            margin=margin,
        ), prod
    return Check("comparison", name, True, detail, cand[metric], prod[metric], margin=margin), prod


# Two scores closer than this are a tie (metrics computed on the same rows differ by float noise at most).
TIE = 1e-12
# The best score a metric can reach: production there cannot be beaten on it, only tied.
BEST: dict[str, float] = {
    "accuracy": 1.0,
    "f1": 1.0,
    "precision": 1.0,
    "recall": 1.0,
    "roc_auc": 1.0,
    "r2": 1.0,
    "log_loss": 0.0,
    "rmse": 0.0,
    "mae": 0.0,
}
TIE_RULE_HINT = (
    "name a tie rule in gate.compare_to_production: `min_delta: 0` accepts a tie, "
    "`tie_breaker: METRIC` lets a second metric decide it"
)


def improvement_shortfall(
    cmp: CompareSpec, metric: str, delta: float, cand: dict[str, float], prod: dict[str, float]
) -> str | None:
    """Why a retrain's candidate does not improve enough on `metric` (None when it does). By default it must
    be strictly better; `min_delta` sets the least improvement (0 accepts a tie); on a tie, `tie_breaker`
    decides. A production at the metric's best possible score can only be tied: the message says so."""
    tie = abs(delta) < TIE
    if delta < 0 and not tie:
        return "the candidate is no better (a retrain must improve)"
    if tie and cmp.tie_breaker is not None:
        second = cmp.tie_breaker
        if second not in cand or second not in prod:
            return (
                f"a tie, and gate.compare_to_production.tie_breaker {second!r} cannot be computed for both "
                f"models (candidate has {', '.join(sorted(cand))})"
            )
        won = better(second, cand[second], prod[second])
        if won > TIE:
            return None
        return (
            f"a tie, and the tie breaker {second} {cand[second]:.4f} vs {prod[second]:.4f} is no better "
            "(a retrain must improve)"
        )
    needed = cmp.min_delta
    if needed is None and not tie and delta > 0:
        return None
    if needed is not None and (delta >= needed or (tie and needed == 0)):
        return None
    if needed is not None:
        return f"improves by {delta:.4f}, less than gate.compare_to_production.min_delta {needed} (a retrain must)"
    best = BEST.get(metric)
    if best is not None and abs(prod[metric] - best) < TIE:
        return (
            f"the candidate is no better (a retrain must improve), and production already scores the best possible "
            f"{metric} ({best:g}), so no retrain can ever beat it on {metric}: {TIE_RULE_HINT}"
        )
    return f"the candidate is no better (a retrain must improve); a tie: {TIE_RULE_HINT}"


def tie_decided(cmp: CompareSpec, cand: dict[str, float], prod: dict[str, float]) -> str:
    """How a tie that passes was decided, for the check's message."""
    if cmp.tie_breaker is not None and cmp.tie_breaker in cand and cmp.tie_breaker in prod:
        second = cmp.tie_breaker
        return f"decided by the tie breaker {second} {cand[second]:.4f} vs {prod[second]:.4f}"
    return f"accepted by gate.compare_to_production.min_delta {cmp.min_delta}"


def schema_check(
    gate: GateSpec, candidate: InputSchema, production: InputSchema | None, production_label: str = "production"
) -> Check:
    """The candidate's input schema (feature names, order and dtypes) equals production's."""
    name = "input schema matches production"
    if production is None:
        return Check("data", name, True, "skipped: no production version yet", skipped=True)
    cand = [(f.name, f.dtype) for f in candidate.features]
    prod = [(f.name, f.dtype) for f in production.features]
    if cand == prod:
        return Check(
            "data", name, True, f"{len(cand)} features with the same names, order and dtypes as {production_label}"
        )
    problems = schema_differences(prod, cand)
    if gate.allow_schema_change:
        return Check("data", name, True, f"schema changed on purpose (gate.allow_schema_change): {'; '.join(problems)}")
    return Check(
        "data",
        name,
        False,
        f"input schema differs from {production_label}: {'; '.join(problems)} "
        "(set gate.allow_schema_change: true if the change is on purpose)",
        detail="\n".join(problems),
    )


def schema_differences(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> list[str]:
    """What changed between two feature lists, in words."""
    old_types, new_types = dict(old), dict(new)
    problems = []
    added = [n for n, _ in new if n not in old_types]
    removed = [n for n, _ in old if n not in new_types]
    if added:
        problems.append(f"added features {added}")
    if removed:
        problems.append(f"removed features {removed}")
    for feature, dtype in new:
        if feature in old_types and old_types[feature] != dtype:
            problems.append(f"feature {feature!r} dtype {old_types[feature]} -> {dtype}")
    common_old = [n for n, _ in old if n in new_types]
    common_new = [n for n, _ in new if n in old_types]
    if not problems and common_old != common_new:
        problems.append(f"feature order {common_old} -> {common_new}")
    return problems


def nan_check(gate: GateSpec, frame: pd.DataFrame, source: str) -> Check:
    """No NaN or infinite value in the training data unless gate.allow_nan."""
    name = "no NaN or infinite values in the training data"
    counts: dict[str, tuple[int, int]] = {}
    for column in frame.columns:
        series = frame[column]
        nan = int(series.isna().sum())
        inf = int(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)).sum()) if series.dtype.kind in "fiu" else 0
        if nan or inf:
            counts[str(column)] = (nan, inf)
    if not counts:
        return Check(
            "data",
            name,
            True,
            f"{len(frame)} rows x {frame.shape[1]} columns of {source}: all values finite",
            value=0.0,
        )
    total = sum(n + i for n, i in counts.values())
    parts = [
        f"{col!r}: " + ", ".join(t for t in (f"{n} NaN" if n else "", f"{i} inf" if i else "") if t)
        for col, (n, i) in counts.items()
    ]
    where = "; ".join(parts)
    if gate.allow_nan:
        return Check("data", name, True, f"{total} NaN/inf values allowed by gate.allow_nan ({where})", float(total))
    return Check(
        "data",
        name,
        False,
        f"training data {source} holds {total} NaN/inf values ({where}); clean the data or set gate.allow_nan: true",
        float(total),
        0.0,
        margin=-float(total),
        detail="\n".join(parts),
    )


def evaluate_both(candidate: Artifact, production: Artifact | None) -> tuple[dict[str, float], dict[str, float] | None]:
    """Both models' metrics on the candidate's held-out rows; production's is None when there is none or it
    cannot read those rows (its features are not all there)."""
    x, y = load_holdout(candidate)
    cand = evaluate(candidate.model, x, y, candidate.task)
    if production is None or not set(production.feature_names) <= set(x.columns):
        return cand, None
    return cand, evaluate(production.model, x[production.feature_names], y, production.task)
