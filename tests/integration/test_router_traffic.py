"""Sticky and shadow routing through a real `legion-ci router` in front of real model servers (capture on),
routes from a real registry. Sticky: a caller's header (or cookie) keeps it on one version. Shadow: a copy
of production's requests reaches the candidate after the caller's answer; the caller sees production only,
the candidate's predictions are in the capture store marked shadow under the caller's request id, and a
shadow that hangs or dies changes no caller's status."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from legion_ci.core.processes import spawn, stop_pid, wait_ready
from legion_ci.core.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.deploy import local_router, traffic
from legion_ci.feedback.capture import read_store, store_dir
from tests.integration.conftest import build_iris_artifact

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


class HangingServer:
    """Accepts connections and reads requests but never answers: a shadow that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:  # one request head (the body follows; its bytes never hold a blank line)
                _, data = data.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.requests += 1

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@dataclass
class Fleet:
    settings: Settings
    registry: Registry
    router: str
    v1: DeploymentRecord  # production, 1.0.0
    v2: DeploymentRecord  # candidate, 2.0.0
    extra: list[DeploymentRecord] = field(default_factory=list)

    def routes(self) -> dict[str, Any]:
        routes: dict[str, Any] = httpx.get(f"{self.router}/routes", timeout=5).json()
        return routes

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.routes()):
            assert time.monotonic() < deadline, f"router did not reach the expected routes: {self.routes()}"
            time.sleep(0.1)

    def set_traffic(self, weights: dict[int, int], mirrors: dict[int, int]) -> None:
        self.registry.set_weights(weights)
        for deployment_id, percent in mirrors.items():
            traffic.set_mirror(self.registry, deployment_id, percent)

        def applied(routes: dict[str, Any]) -> bool:
            seen = {d["deployment_id"]: d for d in routes["models"]["iris"]["deployments"]}
            return all(seen.get(i, {}).get("weight") == w for i, w in weights.items()) and all(
                seen.get(i, {}).get("mirror") == m for i, m in mirrors.items()
            )

        self.wait_for(applied)


def _register(registry: Registry, folder: Path) -> VersionRecord:
    from legion_ci.core.artifact import Artifact

    art = Artifact.open(folder)
    manifest = art.manifest.model_copy(update={"artifact_id": f"{art.version.replace('.', '')}feedbeef01"})
    return registry.register_version(manifest, str(folder))[0]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    home = tmp_path_factory.mktemp("traffic-home")
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}").model_copy(
        update={"router_sticky_header": "X-User-ID", "router_sticky_cookie": "uid", "router_shadow_timeout": 30.0}
    )
    registry = Registry.from_settings(settings)
    art = tmp_path_factory.mktemp("traffic-artifacts")
    versions = [_register(registry, build_iris_artifact(art / v, version=v)) for v in ("1.0.0", "2.0.0")]
    env = {"LEGION_HOME": str(home)}
    started = [
        spawn(["serve", v.path, "--port", "0", "--no-auth"], home / f"{i}.log", env) for i, v in enumerate(versions)
    ]
    old_port = os.environ.pop(local_router.ENV_PORT, None)
    try:
        for endpoint in started:
            wait_ready(endpoint)
        v1 = registry.add_deployment("iris", versions[0].id, "local", 100, started[:1], {"version": "1.0.0"})
        v2 = registry.add_deployment("iris", versions[1].id, "local", 0, started[1:], {"version": "2.0.0"})
        info, _ = local_router.ensure(settings, port=0)
        yield Fleet(settings, registry, info.url, v1, v2)
    finally:
        local_router.stop(settings)
        for endpoint in started:
            stop_pid(int(endpoint["pid"]))
        registry.close()
        if old_port is not None:
            os.environ[local_router.ENV_PORT] = old_port


def _call(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    return client.post(f"{url}/api/model/iris/invoke", json=ROW, **kwargs)


# --- sticky ------------------------------------------------------------------------------------------------


def test_sticky_header_and_cookie_keep_a_caller_on_one_version(fleet: Fleet) -> None:
    fleet.set_traffic({fleet.v1.id: 80, fleet.v2.id: 20}, {fleet.v2.id: 0})
    placed: dict[str, str] = {}
    with httpx.Client(timeout=10) as client:
        for i in range(300):
            answer = _call(client, fleet.router, headers={"X-User-ID": f"user-{i}"})
            assert answer.status_code == 200, answer.text
            placed[f"user-{i}"] = answer.headers["x-model-version"]
        for i in range(0, 300, 5):  # again: the same version every time
            again = _call(client, fleet.router, headers={"X-User-ID": f"user-{i}"})
            assert again.headers["x-model-version"] == placed[f"user-{i}"]
            by_cookie = _call(client, fleet.router, headers={"Cookie": f"theme=dark; uid=user-{i}"})
            assert by_cookie.headers["x-model-version"] == placed[f"user-{i}"]  # same key, same hash
        share = Counter(placed.values())["2.0.0"] / len(placed)
        assert 0.1 <= share <= 0.3, share  # 20% weight; 300 callers: 5 standard deviations either side
        unkeyed = Counter(_call(client, fleet.router).headers["x-model-version"] for _ in range(50))
        assert unkeyed == {"1.0.0": 40, "2.0.0": 10}  # without a key: by weight, exactly


# --- shadow -----------------------------------------------------------------------------------------------


def _captures(fleet: Fleet) -> list[dict[str, Any]]:
    return [r for _, r in read_store(store_dir(fleet.settings.feedback_dir, "iris")) if r.get("kind") == "prediction"]


def _shadow_metric(fleet: Fleet, outcome: str, version: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{fleet.router}/metrics").text):
        for s in family.samples:
            if s.name == "legion_router_shadow_requests_total" and s.labels == {
                "model": "iris",
                "version": version,
                "outcome": outcome,
            }:
                return s.value
    return 0.0


def test_shadow_gets_a_copy_and_the_caller_sees_production_only(fleet: Fleet) -> None:
    fleet.set_traffic({fleet.v1.id: 100, fleet.v2.id: 0}, {fleet.v2.id: 100})
    ids = [f"shadow-test-{i}" for i in range(30)]
    with httpx.Client(timeout=10) as client:
        for rid in ids:
            answer = _call(client, fleet.router, headers={"X-Request-ID": rid, "X-User-ID": rid})
            assert answer.status_code == 200
            assert answer.headers["x-model-version"] == "1.0.0"
            assert answer.headers["x-legion-deployment"] == str(fleet.v1.id)
            assert answer.json()["version"] == "1.0.0"
        deadline = time.monotonic() + 15
        while True:  # the copies are sent after the answers, and the capture is read from its segments
            records = [r for r in _captures(fleet) if r["request_id"] in ids]
            shadow = {r["request_id"]: r for r in records if r.get("shadow")}
            if len(shadow) == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert set(shadow) == set(ids)
    assert {r["version"] for r in shadow.values()} == {"2.0.0"}
    production = {r["request_id"]: r for r in records if not r.get("shadow")}
    assert set(production) == set(ids) and {r["version"] for r in production.values()} == {"1.0.0"}
    assert _shadow_metric(fleet, "ok", "2.0.0") >= len(ids)
    # a caller cannot mark its own request shadow: the router drops the header
    with httpx.Client(timeout=10) as client:  # the capture is written before the answer goes out
        _call(client, fleet.router, headers={"X-Request-ID": "forged-shadow", "X-Legion-Shadow": "1"})
    forged = [r for r in _captures(fleet) if r["request_id"] == "forged-shadow"]
    assert [r["version"] for r in forged if not r.get("shadow")] == ["1.0.0"]


def _extra_deployment(fleet: Fleet, url: str) -> DeploymentRecord:
    v2 = fleet.registry.version_by_id(fleet.v2.version_id)
    return fleet.registry.add_deployment(
        "iris", v2.id, "local", 0, [{"url": url, "pid": 0, "port": 0}], {"version": "2.0.0"}
    )


def test_a_hanging_shadow_changes_nothing_for_the_caller(fleet: Fleet) -> None:
    hanging = HangingServer()
    stuck = _extra_deployment(fleet, hanging.url)
    try:
        fleet.set_traffic({fleet.v1.id: 100, fleet.v2.id: 0, stuck.id: 0}, {fleet.v2.id: 0, stuck.id: 100})
        with httpx.Client(timeout=10) as client:
            statuses = Counter(_call(client, fleet.router).status_code for _ in range(40))
        assert statuses == {200: 40}
        deadline = time.monotonic() + 10
        while hanging.requests < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        # every copy reached the hanging server and none was answered (the shadow timeout is 30 s), yet
        # every caller had its answer already: the caller never waited for its shadow
        assert hanging.requests == 40
        assert _shadow_metric(fleet, "timeout", "2.0.0") == 0
    finally:
        fleet.set_traffic({fleet.v1.id: 100, fleet.v2.id: 0, stuck.id: 0}, {stuck.id: 0})
        fleet.registry.update_deployment(stuck.id, status="stopped")
        hanging.close()


def test_a_dead_or_dying_shadow_changes_no_status_code(fleet: Fleet, tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there: every copy is refused
    dead = _extra_deployment(fleet, dead_url)
    v2 = fleet.registry.version_by_id(fleet.v2.version_id)
    dying = spawn(["serve", v2.path, "--port", "0", "--no-auth", "--no-capture"], tmp_path / "dying.log", {})
    try:
        wait_ready(dying)
        doomed = _extra_deployment(fleet, str(dying["url"]))
        fleet.set_traffic(
            {fleet.v1.id: 100, fleet.v2.id: 0, dead.id: 0, doomed.id: 0}, {fleet.v2.id: 0, dead.id: 100, doomed.id: 100}
        )
        failures: list[str] = []
        answered: Counter[str] = Counter()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                for _ in range(60):
                    r = _call(client, fleet.router)
                    if r.status_code == 200:
                        answered[r.headers["x-model-version"]] += 1
                    else:
                        failures.append(f"{r.status_code} {r.text}")

        thread = threading.Thread(target=load)
        thread.start()
        while sum(answered.values()) < 20 and thread.is_alive():
            time.sleep(0.02)
        os.kill(int(dying["pid"]), signal.SIGKILL)  # a real shadow server dies mid-load
        thread.join()
        assert failures == []
        assert answered == {"1.0.0": 60}
        assert _shadow_metric(fleet, "unreachable", "2.0.0") >= 60  # the dead one's copies, at least
        fleet.registry.update_deployment(doomed.id, status="stopped")
    finally:
        stop_pid(int(dying["pid"]))
        fleet.registry.update_deployment(dead.id, status="stopped")
