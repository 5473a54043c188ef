"""The router's table: sticky keys land on one deployment while the weights stand and spread in the weights'
proportions; a weight change moves only the keys that must move; mirror shares are exact. No servers."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from legion_ci.router.app import Sticky, _cookie, _forward_headers
from legion_ci.router.metrics import RouterMetrics
from legion_ci.router.table import Route, RouteTable, sticky_point

KEYS = [f"user-{i}".encode() for i in range(20_000)]


def _table(w1: int, w2: int, mirror: int = 0) -> RouteTable:
    table = RouteTable()
    table.replace(
        [
            Route(1, "iris", "1.0.0", w1, ("http://a", "http://b")),
            Route(2, "iris", "2.0.0", w2, ("http://c",), mirror),
        ]
    )
    return table


def _version(table: RouteTable, key: bytes, exclude: set[str] | None = None) -> str:
    backend = table.pick("iris", exclude=exclude, sticky=sticky_point("iris", key))
    assert backend is not None
    return backend.version


@pytest.mark.parametrize(("w1", "w2"), [(95, 5), (80, 20), (50, 50)])
def test_a_sticky_key_always_lands_on_one_version_and_keys_share_by_weight(w1: int, w2: int) -> None:
    table = _table(w1, w2)
    first = {key: _version(table, key) for key in KEYS}
    for key in KEYS[::7]:  # again, between weighted picks that move the round-robin state
        table.pick("iris")
        assert _version(table, key) == first[key]
    share = Counter(first.values())["2.0.0"] / len(KEYS)
    # binomial standard deviation at n=20000 is at most 0.0036: 0.02 is over 5 of them
    assert abs(share - w2 / 100) < 0.02, share


def test_a_growing_canary_only_gains_keys() -> None:
    """Weights 95/5 -> 80/20 -> 50/50: a key on the candidate stays there; only production's keys move."""
    steps = [_table(95, 5), _table(80, 20), _table(50, 50)]
    placed = [{key: _version(t, key) for key in KEYS} for t in steps]
    for before, after in itertools.pairwise(placed):
        assert all(after[k] == "2.0.0" for k, v in before.items() if v == "2.0.0")


def test_sticky_falls_back_when_its_deployment_is_down_and_points_are_stable() -> None:
    table = _table(50, 50)
    on_v2 = next(k for k in KEYS if _version(table, k) == "2.0.0")
    assert _version(table, on_v2, exclude={"http://c"}) == "1.0.0"
    assert sticky_point("iris", b"u-1") == sticky_point("iris", b"u-1")  # no per-process hash seed
    assert 0.0 <= sticky_point("iris", b"u-1") < 1.0
    assert sticky_point("iris", b"u-1") != sticky_point("wine", b"u-1")
    assert _table(100, 0).pick("iris", sticky=0.999).version == "1.0.0"  # type: ignore[union-attr]


def test_the_key_comes_from_the_header_else_the_cookie() -> None:
    sticky = Sticky.of("X-User-ID", "uid")
    scope: dict[str, Any] = {
        "headers": [(b"cookie", b"a=1; uid=c-9"), (b"x-user-id", b"h-7")],
        "client": ("1.2.3.4", 5),
    }
    assert _forward_headers(scope, sticky)[2] == b"h-7"
    scope = {"headers": [(b"cookie", b'a=1;  uid="c-9"'), (b"x-legion-shadow", b"1")]}
    _, headers, key = _forward_headers(scope, sticky)
    assert key == b"c-9"
    assert (b"x-legion-shadow", b"1") not in headers  # only the router marks a copy shadow
    assert _forward_headers(scope, Sticky())[2] is None
    assert _cookie([b"uid=", b"x=1"], b"uid") is None


def test_mirror_copies_its_share_exactly_and_never_to_the_answering_deployment() -> None:
    table = _table(100, 0, mirror=25)
    copies = [c for _ in range(400) for c in table.mirror("iris", answered_by=1)]
    assert len(copies) == 100
    assert {c.version for c in copies} == {"2.0.0"}
    assert all(table.mirror("iris", answered_by=2) == [] for _ in range(8))
    assert _table(100, 0).mirror("iris", answered_by=1) == []
    assert {table.pick("iris").version for _ in range(20)} == {"1.0.0"}  # type: ignore[union-attr]
    assert table.describe()["iris"]["deployments"][1]["mirror"] == 25


def test_metrics_have_a_histogram_and_errors_per_version() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = RouterMetrics()
    for seconds in (0.0004, 0.003, 0.2):
        metrics.observe("iris", "1.0.0", 200, seconds)
    metrics.observe("iris", "2.0.0", 502, 0.01)
    metrics.observe_shadow("iris", "2.0.0", "timeout")
    metrics.observe_shadow("iris", "2.0.0", "ok", 0.004)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(_table(90, 10)).decode())}
    assert families["legion_router_request_seconds"].type == "histogram"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    v1 = (("model", "iris"), ("version", "1.0.0"))
    assert samples[("legion_router_request_seconds_bucket", (("le", "0.001"), *v1))] == 1
    assert samples[("legion_router_request_seconds_bucket", (("le", "0.005"), *v1))] == 2
    assert samples[("legion_router_request_seconds_bucket", (("le", "+Inf"), *v1))] == 3
    assert samples[("legion_router_request_seconds_count", v1)] == 3
    assert samples[("legion_router_errors_total", (("code", "502"), ("model", "iris"), ("version", "2.0.0")))] == 1
    assert ("legion_router_errors_total", (("code", "200"), *v1)) not in samples
    shadow = (("model", "iris"), ("outcome", "timeout"), ("version", "2.0.0"))
    assert samples[("legion_router_shadow_requests_total", shadow)] == 1
    assert samples[("legion_router_shadow_seconds_count", (("model", "iris"), ("version", "2.0.0")))] == 1
