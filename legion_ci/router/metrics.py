"""The router's Prometheus metrics (`GET /metrics`): answers by model, version and status, their time,
and connections refused by backends. Plain counters rendered as text: no lock, nothing on the request
path but two additions."""

from __future__ import annotations

from collections import defaultdict

from legion_ci.router.table import RouteTable

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RouterMetrics:
    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0, 0.0])
        self.refused: dict[str, int] = defaultdict(int)

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        entry = self.answers[(model, version, status)]
        entry[0] += 1
        entry[1] += seconds

    def render(self, table: RouteTable) -> bytes:
        lines = [
            "# HELP legion_router_requests_total Answers sent, by model, version (- when no backend) and status.",
            "# TYPE legion_router_requests_total counter",
        ]
        timing = [
            "# HELP legion_router_request_seconds Time from request to answer, by model and version.",
            "# TYPE legion_router_request_seconds summary",
        ]
        for (model, version, status), (count, total) in sorted(self.answers.items()):
            labels = f'model="{_label(model)}",version="{_label(version)}"'
            lines.append(f'legion_router_requests_total{{{labels},code="{status}"}} {int(count)}')
            timing.append(f'legion_router_request_seconds_count{{{labels},code="{status}"}} {int(count)}')
            timing.append(f'legion_router_request_seconds_sum{{{labels},code="{status}"}} {total:.6f}')
        lines += timing
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
            "# HELP legion_router_routes_generation Routing tables applied since start.",
            "# TYPE legion_router_routes_generation counter",
            f"legion_router_routes_generation {table.generation}",
        ]
        return ("\n".join(lines) + "\n").encode()
