"""The router's Prometheus metrics (`GET /metrics`), per variant (model and version): answers by status,
errors (answers of status 500 and up, the router's own 502/503 included), a latency histogram, shadow
(mirrored) requests by outcome with their own histogram, connections refused by backends, and the weights.
Plain counters rendered as text: no lock, nothing on the request path but a few additions and a bisect."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from legion_ci.router.table import RouteTable

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the latency buckets: the router's own cost is sub-millisecond, a model's tens.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SHADOW_OUTCOMES = ("ok", "error", "timeout", "unreachable", "dropped")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Histogram:
    """Counts per bucket (not yet cumulative), their sum and count: one bisect and three additions."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip((*BUCKETS, None), self.counts, strict=True):
            running += n
            le = "+Inf" if bound is None else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class _Variant(Histogram):
    """One variant's answer times, and its answers by status."""

    __slots__ = ("codes",)

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[int, int] = {}


class RouterMetrics:
    def __init__(self) -> None:
        self.variants: dict[tuple[str, str], _Variant] = {}
        self.refused: dict[str, int] = defaultdict(int)
        self.shadow: dict[tuple[str, str, str], int] = defaultdict(int)
        self.shadow_latency: dict[tuple[str, str], Histogram] = defaultdict(Histogram)

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        """One answer to a caller, by the variant that gave it (version "-" when none could)."""
        variant = self.variants.get((model, version))
        if variant is None:
            variant = self.variants[(model, version)] = _Variant()
        variant.counts[bisect_left(BUCKETS, seconds)] += 1
        variant.total += seconds
        variant.count += 1
        variant.codes[status] = variant.codes.get(status, 0) + 1

    def observe_shadow(self, model: str, version: str, outcome: str, seconds: float | None = None) -> None:
        """One mirrored request: its outcome (SHADOW_OUTCOMES) and, when it was sent, its time."""
        self.shadow[(model, version, outcome)] += 1
        if seconds is not None:
            self.shadow_latency[(model, version)].observe(seconds)

    def render(self, table: RouteTable) -> bytes:
        lines = [
            "# HELP legion_router_requests_total Answers sent, by model, version (- when no backend) and status.",
            "# TYPE legion_router_requests_total counter",
        ]
        errors = [
            "# HELP legion_router_errors_total Answers of status 500 and up (the router's 502/503 included), "
            "by model, version and status.",
            "# TYPE legion_router_errors_total counter",
        ]
        answers = sorted(
            ((m, v, status), n) for (m, v), variant in self.variants.items() for status, n in variant.codes.items()
        )
        for (model, version, status), count in answers:
            labels = f'model="{_label(model)}",version="{_label(version)}",code="{status}"'
            lines.append(f"legion_router_requests_total{{{labels}}} {count}")
            if status >= 500:
                errors.append(f"legion_router_errors_total{{{labels}}} {count}")
        lines += errors
        lines += [
            "# HELP legion_router_request_seconds Time from request to answer, by model and version.",
            "# TYPE legion_router_request_seconds histogram",
        ]
        for (model, version), variant in sorted(self.variants.items()):
            lines += variant.lines(
                "legion_router_request_seconds", f'model="{_label(model)}",version="{_label(version)}"'
            )
        lines += [
            "# HELP legion_router_shadow_requests_total Requests mirrored to a shadow deployment after the caller's "
            "answer, by model, version and outcome (ok, error: an answer of 500 and up or a broken one, timeout, "
            "unreachable, dropped: too many shadows in flight).",
            "# TYPE legion_router_shadow_requests_total counter",
        ]
        lines += [
            f'legion_router_shadow_requests_total{{model="{_label(m)}",version="{_label(v)}",outcome="{o}"}} {n}'
            for (m, v, o), n in sorted(self.shadow.items())
        ]
        lines += [
            "# HELP legion_router_shadow_seconds Time a shadow deployment took to answer a mirrored request.",
            "# TYPE legion_router_shadow_seconds histogram",
        ]
        for (model, version), histogram in sorted(self.shadow_latency.items()):
            lines += histogram.lines(
                "legion_router_shadow_seconds", f'model="{_label(model)}",version="{_label(version)}"'
            )
        lines += [
            "# HELP legion_router_backend_refused_total Connections refused by a backend (the request went "
            "to another replica).",
            "# TYPE legion_router_backend_refused_total counter",
        ]
        lines += [
            f'legion_router_backend_refused_total{{model="{_label(m)}"}} {n}' for m, n in sorted(self.refused.items())
        ]
        lines += [
            "# HELP legion_router_weight Traffic weight of each routed deployment.",
            "# TYPE legion_router_weight gauge",
        ]
        lines += [
            f'legion_router_weight{{model="{_label(r.model)}",version="{_label(r.version)}",'
            f'deployment="{r.deployment_id}"}} {r.weight}'
            for r in table.routes
        ]
        lines += [
            "# HELP legion_router_mirror_percent Share of a model's answered requests copied to each shadow "
            "deployment.",
            "# TYPE legion_router_mirror_percent gauge",
        ]
        lines += [
            f'legion_router_mirror_percent{{model="{_label(r.model)}",version="{_label(r.version)}",'
            f'deployment="{r.deployment_id}"}} {r.mirror}'
            for r in table.routes
            if r.mirror
        ]
        lines += [
            "# HELP legion_router_routes_generation Routing tables applied since start.",
            "# TYPE legion_router_routes_generation counter",
            f"legion_router_routes_generation {table.generation}",
        ]
        return ("\n".join(lines) + "\n").encode()
