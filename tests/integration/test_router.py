"""The A/B router: a real `legion-ci router` process in front of real model servers, routes from a real
registry. Weights are honoured, weight changes apply live, a replica that is down costs no request, and
X-Request-ID reaches the backend and comes back. The pure parts (table, paths, weights) are tested first."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from legion_ci.core.errors import ConfigError
from legion_ci.core.processes import ours, spawn, stop_pid, wait_ready
from legion_ci.core.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.deploy import local_router, weights
from legion_ci.deploy.drain import busy
from legion_ci.router import paths
from legion_ci.router.table import Route, RouteTable
from tests.integration.conftest import build_iris_artifact

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


# --- the pure parts ------------------------------------------------------------------------------------


def test_smooth_weighted_round_robin_gives_exact_shares() -> None:
    table = RouteTable()
    table.replace(
        [Route(1, "iris", "1.0.0", 80, ("http://a", "http://b")), Route(2, "iris", "2.0.0", 20, ("http://c",))]
    )
    picks = [table.pick("iris") for _ in range(100)]
    versions = Counter(b.version for b in picks if b)
    assert versions == {"1.0.0": 80, "2.0.0": 20}
    assert Counter(b.url for b in picks if b and b.version == "1.0.0") == {"http://a": 40, "http://b": 40}
    assert {b.url for b in (table.pick("iris", "2.0.0") for _ in range(5)) if b} == {"http://c"}
    assert table.pick("iris", exclude={"http://a", "http://b", "http://c"}) is None
    assert table.pick("other") is None


def test_table_keeps_inflight_counts_across_rebuilds_and_skips_zero_weight() -> None:
    table = RouteTable()
    table.replace([Route(1, "iris", "1.0.0", 50, ("http://a",)), Route(2, "iris", "2.0.0", 50, ("http://c",))])
    held = table.pick("iris", "1.0.0")
    assert held is not None
    held.inflight += 1
    assert table.replace([Route(1, "iris", "1.0.0", 0, ("http://a",)), Route(2, "iris", "2.0.0", 100, ("http://c",))])
    assert not table.replace(
        [Route(2, "iris", "2.0.0", 100, ("http://c",)), Route(1, "iris", "1.0.0", 0, ("http://a",))]
    )
    assert {b.version for b in (table.pick("iris") for _ in range(10)) if b} == {"2.0.0"}
    described = {d["deployment_id"]: d for d in table.describe()["iris"]["deployments"]}
    assert described[1]["weight"] == 0 and described[1]["inflight"] == 1
    assert busy({"models": table.describe()}, {1}) == ["iris deployment 1 has 1 request(s) in flight"]
    table.replace([Route(2, "iris", "2.0.0", 100, ("http://c",))])  # retired, yet still answering
    assert table.describe()["iris"]["deployments"][0]["inflight"] == 1
    held.inflight -= 1
    assert busy({"models": table.describe()}, {1}) == []


def test_paths_pin_a_version_or_share_by_weight() -> None:
    known = {"iris": ["1.0.0", "2.0.0"]}.get
    target = paths.parse("/api/model/iris/invoke", lambda m: known(m) or [])
    assert target is not None and target.version is None and target.path_for("2.0.0") == "/api/model/iris/2.0.0/invoke"
    pinned = paths.parse("/api/model/iris/1.0.0/invoke", lambda m: known(m) or [])
    assert pinned is not None and pinned.version == "1.0.0"
    assert pinned.path_for("1.0.0") == "/api/model/iris/1.0.0/invoke"
    v2 = paths.parse("/v2/models/iris/versions/2.0.0/infer", lambda m: [])
    assert v2 is not None and (v2.model, v2.version) == ("iris", "2.0.0")
    assert paths.parse("/v2/models/iris/infer", lambda m: []).version is None  # type: ignore[union-attr]
    assert paths.parse("/health/ready", lambda m: []) is None


def test_rebalance_keeps_weights_whole_and_summing_to_100() -> None:
    assert weights.rebalance({1: 100}, {2: 20}) == {1: 80, 2: 20}
    assert weights.rebalance({1: 80, 2: 20}, {2: 0}) == {1: 100, 2: 0}
    assert weights.rebalance({1: 50, 2: 30, 3: 20}, {4: 25}) == {1: 38, 2: 22, 3: 15, 4: 25}
    assert weights.first_weight(20, {}) == 100 and weights.first_weight(20, {1: 100}) == 20
    with pytest.raises(ValueError, match="not a percentage"):
        weights.rebalance({1: 100}, {2: 120})


# --- the real router ------------------------------------------------------------------------------------


@dataclass
class Fleet:
    settings: Settings
    registry: Registry
    router: str
    v1: DeploymentRecord  # version 1.0.0, two replicas
    v2: DeploymentRecord  # version 2.0.0, one replica

    def wait_for(self, predicate: object, timeout: float = 10.0) -> dict:
        """The router's /routes once `predicate(routes)` holds (the router polls the registry)."""
        deadline = time.monotonic() + timeout
        while True:
            routes = httpx.get(f"{self.router}/routes", timeout=5).json()
            if predicate(routes):  # type: ignore[operator]
                return routes
            assert time.monotonic() < deadline, f"router did not reach the expected routes: {routes}"
            time.sleep(0.1)


def _weights(routes: dict) -> dict[int, int]:
    return {
        d["deployment_id"]: d["weight"] for d in routes["models"].get("iris", {}).get("deployments", []) if d["routed"]
    }


def _register(registry: Registry, folder: Path) -> VersionRecord:
    from legion_ci.core.artifact import Artifact

    art = Artifact.open(folder)
    manifest = art.manifest.model_copy(update={"artifact_id": f"{art.version.replace('.', '')}abcdef0123"})
    return registry.register_version(manifest, str(folder))[0]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    home = tmp_path_factory.mktemp("router-home")
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    registry = Registry.from_settings(settings)
    art = tmp_path_factory.mktemp("router-artifacts")
    versions = [_register(registry, build_iris_artifact(art / v, version=v)) for v in ("1.0.0", "2.0.0")]
    env = {"LEGION_HOME": str(home)}
    started = [
        spawn(["serve", v.path, "--port", "0", "--no-auth", "--no-capture"], home / f"{i}.log", env)
        for i, v in enumerate((versions[0], versions[0], versions[1]))
    ]
    old_port = os.environ.pop(local_router.ENV_PORT, None)
    try:
        for endpoint in started:
            wait_ready(endpoint)
        v1 = registry.add_deployment("iris", versions[0].id, "local", 80, started[:2], {"version": "1.0.0"})
        v2 = registry.add_deployment("iris", versions[1].id, "local", 20, started[2:], {"version": "2.0.0"})
        info, _ = local_router.ensure(settings, port=0)
        yield Fleet(settings, registry, info.url, v1, v2)
    finally:
        local_router.stop(settings)
        for endpoint in started:
            stop_pid(int(endpoint["pid"]))
        registry.close()
        if old_port is not None:
            os.environ[local_router.ENV_PORT] = old_port


def _versions(url: str, n: int, **kwargs: object) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            answer = client.post(f"{url}/api/model/iris/invoke", json=ROW, **kwargs)  # type: ignore[arg-type]
            assert answer.status_code == 200, answer.text
            seen[answer.headers["x-model-version"]] += 1
    return seen


def test_weights_are_honoured(fleet: Fleet) -> None:
    fleet.registry.set_weights({fleet.v1.id: 80, fleet.v2.id: 20})
    fleet.wait_for(lambda r: _weights(r) == {fleet.v1.id: 80, fleet.v2.id: 20})
    seen = _versions(fleet.router, 200)
    assert 0.15 <= seen["2.0.0"] / 200 <= 0.25, seen
    replicas = {
        r["url"]: r["served"]
        for d in httpx.get(f"{fleet.router}/routes").json()["models"]["iris"]["deployments"]
        if d["deployment_id"] == fleet.v1.id
        for r in d["replicas"]
    }
    assert len(replicas) == 2 and all(n > 0 for n in replicas.values()), replicas


def test_weight_changes_apply_live_without_a_restart(fleet: Fleet) -> None:
    pid = local_router.read_state(fleet.settings).pid  # type: ignore[union-attr]
    fleet.registry.set_weights({fleet.v1.id: 0, fleet.v2.id: 100})
    fleet.wait_for(lambda r: _weights(r) == {fleet.v1.id: 0, fleet.v2.id: 100})
    assert _versions(fleet.router, 40) == {"2.0.0": 40}
    fleet.registry.set_weights({fleet.v1.id: 50, fleet.v2.id: 50})
    fleet.wait_for(lambda r: _weights(r) == {fleet.v1.id: 50, fleet.v2.id: 50})
    assert _versions(fleet.router, 40) == {"1.0.0": 20, "2.0.0": 20}
    assert local_router.read_state(fleet.settings).pid == pid  # type: ignore[union-attr]


def test_pinned_version_and_unknown_names(fleet: Fleet) -> None:
    answer = httpx.post(f"{fleet.router}/api/model/iris/2.0.0/invoke", json=ROW)
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "2.0.0"
    assert answer.headers["x-legion-deployment"] == str(fleet.v2.id)
    v2 = httpx.post(
        f"{fleet.router}/v2/models/iris/versions/1.0.0/infer",
        json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]},
    )
    assert v2.status_code == 200 and v2.json()["model_version"] == "1.0.0", v2.text
    missing = httpx.post(f"{fleet.router}/api/model/iris/9.9.9/invoke", json=ROW)
    assert missing.status_code == 404 and "'9.9.9' is not deployed (deployed: 1.0.0, 2.0.0)" in missing.json()["error"]
    unknown = httpx.post(f"{fleet.router}/api/model/nope/invoke", json=ROW)
    assert unknown.status_code == 404 and "model 'nope' has no deployment" in unknown.json()["error"]
    assert httpx.get(f"{fleet.router}/health/ready").status_code == 200


def test_request_id_reaches_the_backend_and_comes_back(fleet: Fleet) -> None:
    bad = {"instances": [[1.0, 2.0]]}  # the backend refuses it, quoting the request id it received
    answer = httpx.post(f"{fleet.router}/api/model/iris/invoke", json=bad, headers={"X-Request-ID": "trace-42.a"})
    assert answer.status_code == 422
    assert answer.headers["x-request-id"] == "trace-42.a"
    assert answer.json()["request_id"] == "trace-42.a"
    fresh = httpx.post(f"{fleet.router}/api/model/iris/invoke", json=bad)
    assert fresh.headers["x-request-id"] and fresh.json()["request_id"] == fresh.headers["x-request-id"]


def test_a_v2_body_id_without_a_header_is_the_request_id_through_the_router(fleet: Fleet) -> None:
    """The router makes up an X-Request-ID when the caller sends none; a v2 body's own `id` must still win
    (it keys the capture and the feedback), as it does on a direct call, not be refused as a mismatch."""
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    body = {"id": "order-77", "inputs": [tensor]}
    answer = httpx.post(f"{fleet.router}/v2/models/iris/versions/1.0.0/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "order-77" and answer.headers["x-request-id"] == "order-77"
    both = httpx.post(
        f"{fleet.router}/v2/models/iris/versions/1.0.0/infer", json=body, headers={"X-Request-ID": "other-1"}
    )
    assert both.status_code == 422 and "differs from the X-Request-ID header" in both.json()["error"]
    forged = httpx.post(  # a caller cannot claim the router made its id up
        f"{fleet.router}/v2/models/iris/versions/1.0.0/infer",
        json=body,
        headers={"X-Request-ID": "other-1", "X-Legion-Request-ID-Minted": "1"},
    )
    assert forged.status_code == 422


def test_a_replica_that_is_down_costs_no_request(fleet: Fleet) -> None:
    """A v1 replica dies (SIGKILL, no drain) while the registry still lists it: every request it would have
    had is refused at connect time, so the router sends it to another replica and none fails."""
    fleet.registry.set_weights({fleet.v1.id: 50, fleet.v2.id: 50})
    fleet.wait_for(lambda r: _weights(r) == {fleet.v1.id: 50, fleet.v2.id: 50})
    _versions(fleet.router, 20)  # keep-alive connections to every replica are open now
    victim = int(fleet.v1.endpoints[0]["pid"])
    os.kill(victim, signal.SIGKILL)
    while Path(f"/proc/{victim}").exists() and Path(f"/proc/{victim}/cmdline").read_bytes():
        time.sleep(0.05)
    failures: list[str] = []
    answered: Counter[str] = Counter()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(60):
                try:
                    r = client.post(f"{fleet.router}/api/model/iris/invoke", json=ROW)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code == 200:
                    answered[r.headers["x-model-version"]] += 1
                else:
                    failures.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert answered == {"1.0.0": 90, "2.0.0": 90}  # the surviving v1 replica took the dead one's share


def test_metrics_count_answers_and_refusals(fleet: Fleet) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(f"{fleet.router}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    ok = samples[("legion_router_requests_total", (("code", "200"), ("model", "iris"), ("version", "2.0.0")))]
    assert ok >= 40
    assert samples[("legion_router_requests_total", (("code", "404"), ("model", "nope"), ("version", "-")))] >= 1
    assert samples[("legion_router_backend_refused_total", (("model", "iris"),))] >= 1
    assert (
        samples[("legion_router_weight", (("deployment", str(fleet.v2.id)), ("model", "iris"), ("version", "2.0.0")))]
        == 50
    )


def test_a_started_router_is_reused_and_exits_once_its_home_is_gone(tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    Registry.from_settings(settings).close()
    info, started = local_router.ensure(settings, port=0)
    try:
        again, started_again = local_router.ensure(settings)
        assert started and not started_again and again.pid == info.pid
        with pytest.raises(ConfigError, match="already listens on"):
            local_router.ensure(settings, port=1)
        shutil.rmtree(home)
        deadline = time.monotonic() + 15
        while ours(info.pid, "router") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ours(info.pid, "router"), "the router outlived its LEGION_HOME"
    finally:
        stop_pid(info.pid, "router")
