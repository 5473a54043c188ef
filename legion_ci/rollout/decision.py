"""The decision of one evaluation: guards first, then the sequential test, then the clock.

Pure: the evidence and the rollout's policy in, a `Decision` out. `legion-ci evaluate` gathers the
evidence (legion_ci.rollout.evidence) and acts on the decision through the deploy core.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from legion_ci.core.spec import RolloutSpec
from legion_ci.rollout import sequential

# Per-row metrics: the score of one labelled row, and whether a larger mean is better.
HIGHER_IS_BETTER = {"accuracy": True, "error_rate": False, "mae": False, "mse": False}
# The gate's comparison metric -> the per-row metric a rollout decides on.
FROM_GATE_METRIC = {
    "accuracy": "accuracy",
    "f1": "accuracy",
    "roc_auc": "accuracy",
    "precision": "accuracy",
    "recall": "accuracy",
    "log_loss": "accuracy",
    "r2": "mse",
    "rmse": "mse",
    "mae": "mae",
}


def resolve_metric(rollout: RolloutSpec, gate_metric: str | None, task: str) -> str:
    """The metric a rollout decides on: its own, else the gate's comparison metric's per-row kin, else the
    task's default (accuracy for classifiers, mse for regressors)."""
    if rollout.metric:
        return rollout.metric
    if gate_metric and gate_metric in FROM_GATE_METRIC:
        return FROM_GATE_METRIC[gate_metric]
    return "mse" if task == "regression" else "accuracy"


class Action(StrEnum):
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    KEEP_TESTING = "keep-testing"


@dataclass(frozen=True)
class Variant:
    """What one variant showed since the rollout began."""

    version: str
    weight: int
    labelled: int = 0  # labelled rows
    mean: float | None = None  # mean per-row score of the labelled rows
    var: float | None = None  # its per-row variance
    requests: int | None = None  # invokes answered (None: not known)
    errors: int | None = None  # of which 5xx
    p99_ms: float | None = None  # p99 of the answer time

    @property
    def error_rate(self) -> float | None:
        if not self.requests or self.errors is None:
            return None
        return self.errors / self.requests


@dataclass(frozen=True)
class Policy:
    """The rollout spec with its metric resolved."""

    metric: str
    strategy: str
    steps: tuple[int, ...]
    margin: float
    alpha: float
    min_labelled: int
    max_duration: float
    at_max_duration: str
    max_error_rate: float
    max_p99_ms: float | None
    min_requests: int

    @classmethod
    def of(cls, rollout: RolloutSpec, metric: str) -> Policy:
        steps = (100,) if rollout.strategy == "immediate" else rollout.steps
        return cls(
            metric=metric,
            strategy=rollout.strategy,
            steps=steps,
            margin=rollout.margin,
            alpha=rollout.alpha,
            min_labelled=rollout.min_labelled,
            max_duration=float(rollout.max_duration),
            at_max_duration=rollout.at_max_duration,
            max_error_rate=rollout.guard.max_error_rate,
            max_p99_ms=rollout.guard.max_p99_ms,
            min_requests=rollout.guard.min_requests,
        )

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    def next_weight(self, weight: int) -> int:
        """The step after `weight` (a shadow candidate, at 0, goes to the first step)."""
        return next((s for s in self.steps if s > weight), 100)


@dataclass(frozen=True)
class Interval:
    gain: float  # candidate minus production, in the direction where larger is better
    low: float
    high: float
    alpha: float

    @property
    def text(self) -> str:
        return f"{self.gain:+.4g} [{self.low:+.4g}, {self.high:+.4g}] ({1 - self.alpha:.0%} confidence sequence)"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    weight_from: int
    weight_to: int | None  # the candidate's new weight (100 = promoted, 0 = rolled back), None = unchanged
    interval: Interval | None = None
    guards: list[str] = field(default_factory=list)  # each guard checked, as a sentence

    @property
    def failed(self) -> bool:
        return self.action is Action.ROLLBACK

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["action"] = str(self.action)
        return out


def interval(policy: Policy, candidate: Variant, production: Variant) -> Interval | None:
    """The confidence sequence of the gain, once both variants have labelled rows."""
    if not candidate.labelled or not production.labelled or candidate.mean is None or production.mean is None:
        return None
    var_c, var_p = candidate.var or 0.0, production.var or 0.0
    tau = sequential.mixing_scale(policy.margin, math.sqrt((var_c + var_p) / 2))
    gain, low, high = sequential.difference(
        candidate.labelled,
        candidate.mean,
        var_c,
        production.labelled,
        production.mean,
        var_p,
        higher_is_better=policy.higher_is_better,
        alpha=policy.alpha,
        tau=tau,
    )
    return Interval(float(gain), float(low), float(high), policy.alpha)


_NO_ERROR_DATA = (
    "not advanced: the error guard has no data (the candidate's error count is unknown: its replicas' /metrics "
    "could not be read)"
)


def check_guards(policy: Policy, candidate: Variant) -> tuple[list[str], list[str]]:
    """(breaches, every guard as checked): error rate and p99 latency of the candidate."""
    breaches: list[str] = []
    checked: list[str] = []
    if candidate.requests is None or candidate.requests < policy.min_requests:
        seen = "unknown" if candidate.requests is None else str(candidate.requests)
        checked.append(f"error guard waits for {policy.min_requests} requests to the candidate (seen: {seen})")
    else:
        rate = candidate.error_rate
        if rate is not None:
            line = f"error rate {rate:.2%} of {candidate.requests} requests (bound {policy.max_error_rate:.2%})"
            checked.append(line)
            if rate > policy.max_error_rate:
                breaches.append(line)
    # the p99 comes from the capture, not from /metrics: it is checked whether the request count is known or not
    if policy.max_p99_ms is not None and candidate.p99_ms is not None:
        line = f"p99 latency {candidate.p99_ms:.3g} ms (bound {policy.max_p99_ms:.3g} ms)"
        checked.append(line)
        if candidate.p99_ms > policy.max_p99_ms:
            breaches.append(line)
    return breaches, checked


def decide(policy: Policy, candidate: Variant, production: Variant, elapsed_s: float) -> Decision:
    """advance, promote, roll back or keep testing; the reason says which rule decided."""
    weight = candidate.weight
    breaches, checked = check_guards(policy, candidate)
    if breaches:
        return Decision(Action.ROLLBACK, f"guard breached: {'; '.join(breaches)}", weight, 0, None, checked)
    est = interval(policy, candidate, production)
    expired = elapsed_s >= policy.max_duration
    few = min(candidate.labelled, production.labelled) < policy.min_labelled
    if few and not expired:
        reason = (
            f"{candidate.labelled} labelled rows for the candidate and {production.labelled} for production; "
            f"a decision needs {policy.min_labelled} each"
        )
        return Decision(Action.KEEP_TESTING, reason, weight, None, est, checked)
    if est is not None and not few:
        found = int(sequential.verdict(est.low, est.high, policy.margin))
        if found == sequential.INFERIOR:
            why = f"{policy.metric} gain {est.text} is all below -{policy.margin:g}: worse than production"
            return Decision(Action.ROLLBACK, why, weight, 0, est, checked)
        if found == sequential.NON_INFERIOR:
            nxt = policy.next_weight(weight)
            verdict = "better than production" if est.low > 0 else "no worse than production"
            why = f"{policy.metric} gain {est.text} is all above -{policy.margin:g}: {verdict}"
            if candidate.requests is None or candidate.errors is None:
                return Decision(Action.KEEP_TESTING, f"{why}; {_NO_ERROR_DATA}", weight, None, est, checked)
            action = Action.PROMOTE if nxt >= 100 else Action.ADVANCE
            return Decision(action, f"{why}; {weight}% -> {nxt}%", weight, nxt, est, checked)
    if expired:
        hours = policy.max_duration / 3600
        if policy.at_max_duration == "promote" and est is not None and est.gain >= -policy.margin:
            why = f"max_duration ({hours:g} h) reached undecided; the estimate {est.text} is within the margin"
            if candidate.requests is None or candidate.errors is None:
                return Decision(Action.KEEP_TESTING, f"{why}; {_NO_ERROR_DATA}", weight, None, est, checked)
            return Decision(Action.PROMOTE, f"{why}: promote (at_max_duration: promote)", weight, 100, est, checked)
        why = f"max_duration ({hours:g} h) reached without evidence of non-inferiority: production kept"
        return Decision(Action.ROLLBACK, why, weight, 0, est, checked)
    why = f"{policy.metric} gain {est.text if est else 'unknown'} is not yet decided at margin {policy.margin:g}"
    return Decision(Action.KEEP_TESTING, why, weight, None, est, checked)
