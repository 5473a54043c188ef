"""The SLA verdict: p95 and p99 latency, requests per second, error rate; each says by how much it missed."""

from __future__ import annotations

import math

from legion_ci.core.spec import SlaSpec
from legion_ci.quality.checks import Check, bound_check
from legion_ci.quality.perf.results import RequestStats


def _not_set(name: str, field: str, shown: str, value: float) -> Check:
    return Check("sla", name, True, f"{shown}; no bound set (perf.sla.{field})", value, skipped=True)


def sla_checks(sla: SlaSpec, total: RequestStats, duration: int) -> list[Check]:
    """One check per SLA bound, measured over the whole run (Locust's Aggregated row)."""
    if total.requests == 0:
        return [
            Check(
                "sla",
                "requests completed",
                False,
                f"no request completed in {duration}s: the server never answered (see perf/locust.log)",
                0.0,
                1.0,
                margin=-1.0,
            )
        ]
    checks = []
    for name, field, value, bound in (
        ("p95 latency", "p95_ms", total.p95_ms, sla.p95_ms),
        ("p99 latency", "p99_ms", total.p99_ms, sla.p99_ms),
    ):
        if math.isnan(value):
            checks.append(Check("sla", name, False, f"{name} unknown: no request succeeded", bound=bound))
        elif bound is None:
            checks.append(_not_set(name, field, f"{name} {value:g} ms", value))
        else:
            checks.append(bound_check("sla", name, name, value, None, bound, unit=" ms"))
    if sla.min_rps is None:
        checks.append(_not_set("throughput", "min_rps", f"throughput {total.rps:.1f} req/s", total.rps))
    else:
        checks.append(
            bound_check("sla", "throughput", "throughput", round(total.rps, 2), sla.min_rps, None, unit=" req/s")
        )
    checks.append(error_rate_check(total, sla.max_error_rate))
    return checks


def error_rate_check(total: RequestStats, limit: float) -> Check:
    rate = total.error_rate
    shown = f"error rate {rate:.2%} ({total.failures} of {total.requests} requests failed)"
    if rate > limit:
        return Check(
            "sla",
            "error rate",
            False,
            f"{shown} is above the maximum {limit:.2%} by {rate - limit:.2%}",
            rate,
            limit,
            margin=limit - rate,
        )
    return Check("sla", "error rate", True, f"{shown} within max {limit:.2%}", rate, limit, margin=limit - rate)
