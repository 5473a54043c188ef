"""One evaluation's decision: guards first, then the sequential test, then the clock."""

from __future__ import annotations

from legion_ci.core.spec import GuardSpec, RolloutSpec
from legion_ci.rollout.decision import Action, Policy, Variant, decide, resolve_metric

CANARY = RolloutSpec(strategy="canary", steps=(5, 20, 50, 100), margin=0.02, min_labelled=100)


def policy(spec: RolloutSpec = CANARY, metric: str = "accuracy") -> Policy:
    return Policy.of(spec, metric)


def acc(
    version: str,
    weight: int,
    n: int,
    p: float,
    requests: int | None = 1000,
    errors: int | None = 0,
    p99_ms: float | None = None,
) -> Variant:
    """A variant with n labelled rows of accuracy p; by default 1000 requests answered without an error."""
    return Variant(version, weight, n, p, p * (1 - p), requests, errors, p99_ms)


def test_too_few_labelled_rows_keeps_testing() -> None:
    d = decide(policy(), acc("2.0.0", 5, 40, 0.1), acc("1.0.0", 95, 800, 0.95), elapsed_s=3600)
    assert d.action is Action.KEEP_TESTING and "needs 100 each" in d.reason and d.weight_to is None


def test_a_clearly_worse_candidate_is_rolled_back_by_evidence() -> None:
    d = decide(policy(), acc("2.0.0", 5, 300, 0.33), acc("1.0.0", 95, 5000, 0.96), elapsed_s=3600)
    assert d.action is Action.ROLLBACK and d.weight_to == 0 and "worse than production" in d.reason
    assert d.interval is not None and d.interval.high < -0.02 and d.failed


def test_a_non_inferior_candidate_advances_one_step_then_is_promoted() -> None:
    prod = acc("1.0.0", 80, 20000, 0.90)
    d = decide(policy(), acc("2.0.0", 20, 20000, 0.92), prod, elapsed_s=3600)
    assert d.action is Action.ADVANCE and (d.weight_from, d.weight_to) == (20, 50)
    d = decide(policy(), acc("2.0.0", 50, 20000, 0.92), prod, elapsed_s=3600)
    assert d.action is Action.PROMOTE and d.weight_to == 100


def test_immediate_strategy_promotes_a_non_inferior_candidate_in_one_step() -> None:
    p = policy(RolloutSpec(strategy="immediate"))
    d = decide(p, acc("2.0.0", 20, 20000, 0.92), acc("1.0.0", 80, 20000, 0.90), elapsed_s=60)
    assert d.action is Action.PROMOTE


def test_a_guard_breach_rolls_back_whatever_the_metric() -> None:
    spec = RolloutSpec(strategy="canary", guard=GuardSpec(max_error_rate=0.01, min_requests=20))
    d = decide(policy(spec), acc("2.0.0", 5, 20000, 0.99, requests=100, errors=5), acc("1.0.0", 95, 20000, 0.9), 60)
    assert d.action is Action.ROLLBACK and "guard breached: error rate 5.00% of 100 requests" in d.reason


def test_a_latency_guard_breach_rolls_back() -> None:
    spec = RolloutSpec(strategy="canary", guard=GuardSpec(max_p99_ms=50))
    cand = acc("2.0.0", 5, 10, 0.99, requests=100, errors=0, p99_ms=80.0)
    d = decide(policy(spec), cand, acc("1.0.0", 95, 20000, 0.9), 60)
    assert d.action is Action.ROLLBACK and "p99 latency 80 ms (bound 50 ms)" in d.reason


def test_guards_wait_for_enough_requests() -> None:
    spec = RolloutSpec(strategy="canary", guard=GuardSpec(max_error_rate=0.0, min_requests=50))
    d = decide(policy(spec), acc("2.0.0", 5, 10, 0.9, requests=3, errors=3), acc("1.0.0", 95, 20000, 0.9), 60)
    assert d.action is Action.KEEP_TESTING and "error guard waits for 50 requests" in d.guards[0]


def test_max_duration_keeps_production_or_promotes_within_the_margin() -> None:
    cand, prod = acc("2.0.0", 5, 150, 0.895), acc("1.0.0", 95, 3000, 0.9)
    week = 7 * 86400
    assert decide(policy(), cand, prod, week - 1).action is Action.KEEP_TESTING
    kept = decide(policy(), cand, prod, week)
    assert kept.action is Action.ROLLBACK and "production kept" in kept.reason
    promoting = RolloutSpec(strategy="canary", at_max_duration="promote")
    assert decide(policy(promoting), cand, prod, week).action is Action.PROMOTE


def test_losses_are_better_when_lower() -> None:
    p = policy(RolloutSpec(strategy="canary", margin=100.0), metric="mse")
    worse = Variant("2.0.0", 5, labelled=2000, mean=3500.0, var=9e6)
    prod = Variant("1.0.0", 95, labelled=20000, mean=2900.0, var=6e6)
    d = decide(p, worse, prod, 3600)
    assert d.action is Action.ROLLBACK and d.interval is not None and d.interval.gain == -600.0


def test_metric_resolution() -> None:
    assert resolve_metric(RolloutSpec(), "f1", "classification") == "accuracy"
    assert resolve_metric(RolloutSpec(), "r2", "regression") == "mse"
    assert resolve_metric(RolloutSpec(), None, "regression") == "mse"
    assert resolve_metric(RolloutSpec(metric="mae"), "r2", "regression") == "mae"


def test_a_shadow_candidate_shown_no_worse_takes_the_first_canary_step() -> None:
    p = policy(RolloutSpec(strategy="shadow", steps=(10, 100), margin=0.02, min_labelled=100))
    d = decide(p, acc("2.0.0", 0, 20000, 0.92), acc("1.0.0", 100, 20000, 0.90), elapsed_s=3600)
    assert d.action is Action.ADVANCE and (d.weight_from, d.weight_to) == (0, 10)
    assert "better than production" in d.reason


def test_an_unknown_error_count_keeps_a_non_inferior_candidate_testing() -> None:
    """/metrics unreachable (a Kubernetes deployment seen from an agent): never advance or promote blind."""
    prod = acc("1.0.0", 80, 20000, 0.90)
    d = decide(policy(), acc("2.0.0", 20, 20000, 0.92, requests=None, errors=None), prod, elapsed_s=3600)
    assert d.action is Action.KEEP_TESTING and d.weight_to is None
    assert "no worse than production" in d.reason or "better than production" in d.reason
    assert "the error guard has no data" in d.reason
    assert "error guard waits for" in d.guards[0] and "(seen: unknown)" in d.guards[0]
    promoting = policy(RolloutSpec(strategy="canary", at_max_duration="promote"))
    late = decide(promoting, acc("2.0.0", 5, 150, 0.895, requests=None, errors=None), prod, 7 * 86400)
    assert late.action is Action.KEEP_TESTING and "the error guard has no data" in late.reason


def test_the_latency_guard_applies_while_the_request_count_is_unknown() -> None:
    spec = RolloutSpec(strategy="canary", guard=GuardSpec(max_p99_ms=50))
    cand = acc("2.0.0", 20, 20000, 0.92, requests=None, errors=None, p99_ms=80.0)
    d = decide(policy(spec), cand, acc("1.0.0", 80, 20000, 0.9), 3600)
    assert d.action is Action.ROLLBACK and "p99 latency 80 ms (bound 50 ms)" in d.reason
