"""The management API as a real `legion-ci api serve` process over a registry filled through the Registry API.

Every endpoint for every role (allowed or 403), tokens refused with 401, model scopes, validation of routes
and aliases, the audit log, the OpenAPI contract (schemathesis), and one real deploy → routes → rollback →
undeploy of a model through Ansible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from legion_ci.api.endpoints import ENDPOINTS
from legion_ci.api.tokens import create_management_token
from legion_ci.auth.jwt import create_token
from legion_ci.cli import main
from legion_ci.core.manifest import JenkinsBuild, Manifest
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.core.status import StageStatus
from tests.hostile import malformed_tokens
from tests.processes import launch

from .conftest import JWT_SECRET, ROOT

AUDIENCE = "legion-ci-management"
ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
ISSUED: set[str] = set()  # every token this module sends, to prove none reaches the audit log


# -- the API process ------------------------------------------------------------------------------------


@dataclass
class Api:
    proc: subprocess.Popen[str]
    url: str
    home: Path
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
        return httpx.request(method, self.url + path, headers=sent, content=content, timeout=timeout)

    def change(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 60.0
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """A change: answered 202 with a queued operation and its Location, polled until it ends."""
        accepted = self.call(method, path, token, body)
        assert accepted.status_code == 202, accepted.text
        queued = accepted.json()
        assert queued["status"] == "queued" and queued["result"] is None and queued["error"] is None
        assert accepted.headers["location"] == queued["location"] == f"/api/v1/operations/{queued['id']}"
        return accepted, self.wait(queued["location"], token, timeout)

    def wait(self, location: str, token: str, timeout: float) -> dict[str, Any]:
        """Poll an operation until it succeeded or failed (the deadline only stops a hung test)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", location, token)
            assert answer.status_code == 200, answer.text
            operation: dict[str, Any] = answer.json()
            if operation["status"] in ("succeeded", "failed"):
                return operation
            assert time.monotonic() < deadline, f"operation still {operation['status']}: {operation}"
            time.sleep(0.2)

    def audit(self) -> list[dict[str, Any]]:
        path = self.home / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def api_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    env.update(
        {
            "LEGION_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "LEGION_JWT_SECRET": JWT_SECRET,
            "LEGION_JWT_MAX_TTL": "2h",
            "LEGION_ROUTER_PORT": "0",
            **(extra or {}),
        }
    )
    return env


def start_api(home: Path, env: dict[str, str], timeout: float = 60.0) -> Api:
    """`legion-ci api serve --port 0`, once it printed `listening on` and answers ready."""
    proc, url, seen = launch(["api", "serve", "--port", "0"], env, "api", timeout)
    return Api(proc, url, home, env, seen)


def token(role: Any, sub: str = "alice", ttl: int = 600, **claims: Any) -> str:
    """An HS256 management token; `claims` add or override claims (None removes one)."""
    if isinstance(role, str) and role in RANK and not claims:
        value = create_management_token(JWT_SECRET, role, sub, ttl, AUDIENCE)
    else:
        now = int(time.time())
        body: dict[str, Any] = {
            "sub": sub,
            "role": role,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": f"t{len(ISSUED)}-{now}",
        }
        body.update(claims)
        value = jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET, algorithm="HS256")
    ISSUED.add(value)
    return value


# -- the registry the API serves --------------------------------------------------------------------------


@dataclass
class World:
    api: Api
    ids: dict[str, int]


def _register(registry: Registry, source: Path, folder: Path, name: str, version: str, artifact_id: str) -> int:
    """A copy of the `source` artifact as `name` `version`, registered through the Registry API."""
    shutil.copytree(source, folder)
    manifest_file = folder / "manifest.json"
    manifest = Manifest.load(manifest_file).model_copy(
        update={
            "name": name,
            "version": version,
            "artifact_id": artifact_id,
            "run_id": f"{name}-train-{version}",
            "jenkins": JenkinsBuild(build_url=f"https://jenkins.example/job/{name}/7/"),
        }
    )
    manifest_file.write_text(json.dumps(manifest.to_json()))
    record, _ = registry.register_version(manifest, str(folder))
    return record.id


def populate(home: Path, source: Path) -> dict[str, int]:
    """iris 1.0.0 (production) and 2.0.0 with two Kubernetes deployments (100/0); wine 1.0.0 with one;
    runs of iris: one with only train passed, one whose train failed."""
    settings = load_settings(str(home))
    registry = Registry.from_settings(settings)
    try:
        ids = {
            "iris1": _register(registry, source, home / "artifacts" / "iris-1", "iris", "1.0.0", "a1" * 8),
            "iris2": _register(registry, source, home / "artifacts" / "iris-2", "iris", "2.0.0", "b2" * 8),
            "wine1": _register(registry, source, home / "artifacts" / "wine-1", "wine", "1.0.0", "c3" * 8),
        }
        registry.set_alias("iris", "production", ids["iris1"])
        for key, model, vid, version, weight in (
            ("d_iris1", "iris", ids["iris1"], "1.0.0", 100),
            ("d_iris2", "iris", ids["iris2"], "2.0.0", 0),
            ("d_wine1", "wine", ids["wine1"], "1.0.0", 100),
        ):
            release = f"legion-{model}-{version.replace('.', '-')}"
            ids[key] = registry.add_deployment(
                model,
                vid,
                "kubernetes",
                weight,
                [{"url": f"http://{release}.legion.svc.cluster.local", "release": release}],
                {"version": version, "release": release, "namespace": "legion"},
            ).id
        registry.ensure_run("iris-nogate", "iris", str(home / "iris-src"), "push")
        registry.record_stage(
            "iris-nogate", "train", StageStatus.PASSED, "trained iris 2.0.0", {"version_id": ids["iris2"]}
        )
        registry.record_stage("iris-nogate", "gate", StageStatus.FAILED, "accuracy 0.5 < 0.9")
        registry.ensure_run("iris-notrain", "iris", str(home / "iris-src"), "push")
        registry.record_stage("iris-notrain", "train", StageStatus.ERROR, "train.py exited with 1")
        registry.add_event(
            "iris",
            "rollout",
            "advance",
            "accuracy gain +0.01 [-0.01, +0.03]: 20% -> 50%",
            {"labelled": 400},
            ids["iris2"],
            "iris-rollout-1",
        )
        registry.ensure_run("wine-run", "wine", str(home / "wine-src"), "push")
        registry.record_stage("wine-run", "train", StageStatus.PASSED, "trained", {"version_id": ids["wine1"]})
    finally:
        registry.close()
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, jwt_files: dict[str, Any], iris_artifact: Path) -> Iterator[World]:
    home = tmp_path_factory.mktemp("api-home")
    ids = populate(home, iris_artifact)
    revoked = home / "revoked.txt"
    revoked.write_text("# revoked token ids\n")
    api = start_api(home, api_env(home, {"LEGION_JWKS": str(jwt_files["jwks"]), "LEGION_JWT_REVOKED": str(revoked)}))
    yield World(api, ids)
    api.stop()


# -- every endpoint, every role ----------------------------------------------------------------------------

# (method, path template, concrete path, body, lowest role allowed, status when allowed). The allowed calls
# stop at a check after authorization (404/409/422), so the table changes nothing.
CASES = [
    ("GET", "/models", "/api/v1/models", None, "viewer", 200),
    ("GET", "/models/{name}", "/api/v1/models/iris", None, "viewer", 200),
    ("GET", "/models/{name}/versions/{ref}", "/api/v1/models/iris/versions/production", None, "viewer", 200),
    ("GET", "/models/{name}/runs", "/api/v1/models/iris/runs", None, "viewer", 200),
    ("GET", "/models/{name}/events", "/api/v1/models/iris/events", None, "viewer", 200),
    ("GET", "/runs/{run_id}", "/api/v1/runs/iris-nogate", None, "viewer", 200),
    ("GET", "/operations/{operation_id}", "/api/v1/operations/" + "0" * 32, None, "viewer", 404),
    (
        "PUT",
        "/models/{name}/aliases/{alias}",
        "/api/v1/models/iris/aliases/staging",
        {"version": "9.9.9"},
        "operator",
        404,
    ),
    ("PUT", "/models/{name}/routes", "/api/v1/models/iris/routes", {"weights": {"1": 0}}, "operator", 422),
    ("POST", "/runs/{run_id}/deploy", "/api/v1/runs/iris-nogate/deploy", {}, "operator", 409),
    ("POST", "/runs/{run_id}/rollback", "/api/v1/runs/iris-notrain/rollback", None, "operator", 409),
    ("DELETE", "/models/{name}/deployments", "/api/v1/models/ghost/deployments", None, "admin", 404),
]


def test_the_table_names_every_endpoint() -> None:
    assert {(c[0], c[1]) for c in CASES} == {(e.method, e.path) for e in ENDPOINTS}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_each_role_is_allowed_or_refused_per_endpoint(world: World, case: tuple[Any, ...], role: str) -> None:
    method, _, path, body, lowest, allowed_status = case
    answer = world.api.call(method, path, token(role), body)
    if RANK[role] >= RANK[lowest]:
        assert answer.status_code == allowed_status, answer.text
    else:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"].startswith(f"role {role!r} may not {method} {path}")
        assert lowest in answer.json()["error"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_every_endpoint_needs_a_token(world: World, case: tuple[Any, ...]) -> None:
    method, _, path, body, _, _ = case
    answer = world.api.call(method, path, None, body)
    assert answer.status_code == 401
    assert answer.json() == {"error": answer.json()["error"], "field": None}
    assert "missing bearer token" in answer.json()["error"]
    assert answer.headers["www-authenticate"].startswith("Bearer")


# -- tokens refused ---------------------------------------------------------------------------------------


def _tampered(value: str) -> str:
    head, payload, signature = value.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["role"] = "admin"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{head}.{forged}.{signature}"


def test_bad_tokens_get_401_with_the_reason(world: World) -> None:
    now = int(time.time())
    cases = {
        "expired": (token("viewer", iat=now - 7200, nbf=now - 7200, exp=now - 3600), "token expired at"),
        "tampered": (_tampered(token("viewer")), "signature does not verify"),
        "wrong audience": (token("admin", aud="legion-ci"), "audience is not 'legion-ci-management'"),
        "model-server token": (create_token(JWT_SECRET, "iris", ttl_seconds=600), "audience is not"),
        "other secret": (
            jwt.encode(
                {"sub": "x", "role": "admin", "aud": AUDIENCE, "exp": now + 60},
                "another-secret-0123456789abcdef0123456789",
                algorithm="HS256",
            ),
            "signature does not verify",
        ),
        "not yet valid": (token("viewer", nbf=now + 600, exp=now + 1200), "not valid before"),
        "too long-lived": (token("viewer", ttl=3 * 3600), "lifetime exceeds the maximum"),
        "no exp": (token("viewer", exp=None), "lacks the required 'exp' claim"),
        "not a JWT": ("not-a-jwt", "malformed token"),
        "alg none": (
            jwt.encode({"role": "admin", "aud": AUDIENCE, "exp": now + 60}, "", algorithm="none"),
            "algorithm 'none' is not accepted",
        ),
    }
    for name, (value, reason) in cases.items():
        ISSUED.add(value)
        answer = world.api.call("GET", "/api/v1/models", value)
        assert answer.status_code == 401, (name, answer.text)
        assert reason in answer.json()["error"], (name, answer.json())
    answer = world.api.call("GET", "/api/v1/models", headers={"Authorization": f"Basic {token('viewer')}"})
    assert answer.status_code == 401 and "must be 'Bearer <JWT>'" in answer.json()["error"]


def test_a_token_without_a_known_role_is_refused_with_403(world: World) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (None, {}, "has no 'role' claim"),
        ("root", {}, "'root' is not one of"),
        (["admin"], {}, "is not one of"),
        ("viewer", {"models": "iris"}, "'models' claim is not a list"),
    ]
    for role, claims, reason in cases:
        answer = world.api.call("GET", "/api/v1/models", token(role, **claims))
        assert answer.status_code == 403, answer.text
        assert reason in answer.json()["error"]


def test_rs256_tokens_from_the_jwks_are_accepted(world: World, jwt_files: dict[str, Any]) -> None:
    now = int(time.time())
    value = jwt.encode(
        {"sub": "oidc-user", "role": "viewer", "aud": AUDIENCE, "iat": now, "exp": now + 300},
        jwt_files["rsa"],
        algorithm="RS256",
        headers={"kid": "rsa-1"},
    )
    ISSUED.add(value)
    assert world.api.call("GET", "/api/v1/models", value).status_code == 200


def test_a_revoked_token_is_refused(world: World) -> None:
    value = token("operator", jti="revoke-me")
    assert world.api.call("GET", "/api/v1/models", value).status_code == 200
    revoked = Path(world.api.env["LEGION_JWT_REVOKED"])
    revoked.write_text(revoked.read_text() + "revoke-me\n")
    deadline = time.monotonic() + 10
    while (answer := world.api.call("GET", "/api/v1/models", value)).status_code == 200:
        assert time.monotonic() < deadline, "the revocation list was never read again"
        time.sleep(0.2)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]


# -- model scopes -----------------------------------------------------------------------------------------


def test_a_token_scoped_to_other_models_is_refused_with_403(world: World) -> None:
    wine_only = token("admin", models=["wine"])
    listed = world.api.call("GET", "/api/v1/models", wine_only).json()["models"]
    assert [m["name"] for m in listed] == ["wine"]
    for method, path, body in (
        ("GET", "/api/v1/models/iris", None),
        ("GET", "/api/v1/runs/iris-nogate", None),
        ("GET", "/api/v1/models/iris/versions/1.0.0", None),
        ("PUT", "/api/v1/models/iris/aliases/production", {"version": "2.0.0"}),
        ("PUT", "/api/v1/models/iris/routes", {"weights": {"1": 100}}),
        ("DELETE", "/api/v1/models/iris/deployments", None),
    ):
        answer = world.api.call(method, path, wine_only, body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "does not cover model 'iris'" in answer.json()["error"]
    assert world.api.call("GET", "/api/v1/runs/wine-run", wine_only).status_code == 200


def test_a_version_pattern_limits_what_the_token_may_change(world: World) -> None:
    ones = token("operator", models=["iris:1.*"])
    assert world.api.call("GET", "/api/v1/models/iris", ones).status_code == 200
    answer = world.api.call("PUT", "/api/v1/models/iris/aliases/canary", ones, {"version": "2.0.0"})
    assert answer.status_code == 403 and "version(s) 2.0.0 of model 'iris'" in answer.json()["error"]
    _, operation = world.api.change("PUT", "/api/v1/models/iris/aliases/canary", ones, {"version": "1.0.0"})
    assert operation["status"] == "succeeded", operation
    # Routes touch every active deployment, 2.0.0's too.
    answer = world.api.call(
        "PUT",
        "/api/v1/models/iris/routes",
        ones,
        {"weights": {str(world.ids["d_iris1"]): 100, str(world.ids["d_iris2"]): 0}},
    )
    assert answer.status_code == 403 and "2.0.0" in answer.json()["error"]


# -- reads ------------------------------------------------------------------------------------------------


def test_model_detail_shows_versions_lineage_aliases_and_deployments(world: World) -> None:
    body = world.api.call("GET", "/api/v1/models/iris", token("viewer")).json()
    assert [v["version"] for v in body["versions"]] == ["1.0.0", "2.0.0"]
    first = body["versions"][0]
    assert first["metrics"] == {"accuracy": 0.97} and "production" in first["aliases"]
    assert first["lineage"]["git_commit"] == "abc123"
    assert first["lineage"]["jenkins_build_url"] == "https://jenkins.example/job/iris/7/"
    assert body["aliases"]["production"]["version"] in ("1.0.0", "2.0.0")
    deployments = {d["id"]: d for d in body["deployments"]}
    assert set(deployments) == {world.ids["d_iris1"], world.ids["d_iris2"]}
    assert all(d["endpoints"][0]["url"].endswith(".svc.cluster.local") for d in deployments.values())
    assert sum(d["weight"] for d in deployments.values()) == 100


def test_version_manifest_run_list_and_run_detail(world: World) -> None:
    viewer = token("viewer")
    version = world.api.call("GET", "/api/v1/models/iris/versions/b2b2", viewer).json()  # artifact id prefix
    assert version["version"] == "2.0.0" and version["manifest"]["model"]["input_schema"]["features"]
    assert world.api.call("GET", "/api/v1/models/iris/versions/7.7.7", viewer).status_code == 404
    runs = world.api.call("GET", "/api/v1/models/iris/runs?limit=5", viewer).json()["runs"]
    assert {r["id"] for r in runs} == {"iris-nogate", "iris-notrain"}
    assert world.api.call("GET", "/api/v1/models/iris/runs?limit=0", viewer).status_code == 422
    run = world.api.call("GET", "/api/v1/runs/iris-nogate", viewer).json()
    assert [s["stage"] for s in run["stages"]] == ["train", "gate"]
    assert run["stages"][1] == {**run["stages"][1], "status": "failed", "summary": "accuracy 0.5 < 0.9"}
    missing = world.api.call("GET", "/api/v1/runs/nope", viewer)
    assert missing.status_code == 404 and "no run 'nope'" in missing.json()["error"]


def test_rollout_decisions_are_read_with_their_evidence(world: World) -> None:
    viewer = token("viewer")
    (event,) = world.api.call("GET", "/api/v1/models/iris/events?limit=5", viewer).json()["events"]
    assert event["action"] == "advance" and event["evidence"] == {"labelled": 400}
    assert event["version_id"] == world.ids["iris2"] and event["run_id"] == "iris-rollout-1"
    assert world.api.call("GET", "/api/v1/models/wine/events", viewer).json()["events"] == []
    assert world.api.call("GET", "/api/v1/models/ghost/events", viewer).status_code == 404


# -- changes: routes and aliases --------------------------------------------------------------------------


def test_routes_validation_errors_are_422_with_a_clear_message(world: World) -> None:
    operator = token("operator")
    d1, d2, wine = (str(world.ids[k]) for k in ("d_iris1", "d_iris2", "d_wine1"))
    cases = [
        ({"weights": {d1: 50, "999": 50}}, "weights.999", "deployment 999 is not an active deployment of model"),
        ({"weights": {d1: 50, wine: 50}}, f"weights.{wine}", f"deployment {wine} is not an active deployment"),
        ({"weights": {d1: 60, d2: 30}}, "weights", "weights add up to 90, not 100"),
        ({"weights": {d1: 110, d2: -10}}, f"weights.{d1}", "110 is out of range (expected a percentage, 0-100)"),
        ({"weights": {d1: 100, d2: -10}}, f"weights.{d2}", "-10 is out of range"),
        ({"weights": {d1: 100}}, "weights", f"missing: {d2}"),
        ({"weights": {d1: 50.5, d2: 49.5}}, f"weights.{d1}", "50.5 is not a whole number"),
        ({"weights": {d1: True, d2: 99}}, f"weights.{d1}", "True is not a whole number"),
        ({"weights": {"one": 100}}, "weights.one", "'one' is not a deployment id"),
        ({"weights": []}, "weights", "must be a non-empty object"),
        ({"weights": {d1: 100, d2: 0}, "dry_run": True}, "dry_run", "unknown field(s) 'dry_run'"),
    ]
    for body, field_name, message in cases:
        answer = world.api.call("PUT", "/api/v1/models/iris/routes", operator, body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["field"] == field_name and message in answer.json()["error"], answer.json()
    for raw, message in (
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"", "request body is empty"),
    ):
        answer = world.api.call("PUT", "/api/v1/models/iris/routes", operator, raw=raw)
        assert answer.status_code == 400 and message in answer.json()["error"], answer.text
    answer = world.api.call("PUT", "/api/v1/models/iris/routes", operator, raw=b" " * 70_000)
    assert answer.status_code == 413
    ghost = world.api.call("PUT", "/api/v1/models/ghost/routes", operator, {"weights": {d1: 100}})
    assert ghost.status_code == 404


def test_routes_set_the_split_in_the_registry_and_the_audit_log(world: World) -> None:
    d1, d2 = world.ids["d_iris1"], world.ids["d_iris2"]
    _, operation = world.api.change(
        "PUT", "/api/v1/models/iris/routes", token("operator", sub="carol"), {"weights": {str(d1): 80, str(d2): 20}}
    )
    assert operation["status"] == "succeeded" and operation["action"] == "routes", operation
    assert {d["id"]: d["weight"] for d in operation["result"]["deployments"]} == {d1: 80, d2: 20}
    registry = Registry.from_settings(load_settings(str(world.api.home)))
    try:
        assert {d.id: d.weight for d in registry.deployments("iris")} == {d1: 80, d2: 20}
    finally:
        registry.close()
    accepted, entry = world.api.audit()[-2:]  # when it was accepted, when its operation ended
    assert accepted["status"] == 202 and accepted["outcome"] == "accepted"
    assert accepted["change"] == {
        "model": "iris",
        "weights": {str(d1): 80, str(d2): 20},
        "operation": operation["id"],
    }
    assert entry["sub"] == "carol" and entry["role"] == "operator" and entry["outcome"] == "ok"
    assert entry["method"] == "PUT" and entry["path"] == "/api/v1/models/iris/routes" and entry["status"] == 200
    assert entry["operation"] == operation["id"] and entry["change"]["weights"] == {str(d1): 80, str(d2): 20}
    assert entry["change"]["previous"] == {str(d1): 100, str(d2): 0}
    _, restored = world.api.change(
        "PUT", "/api/v1/models/iris/routes", token("operator"), {"weights": {str(d1): 100, str(d2): 0}}
    )
    assert restored["status"] == "succeeded"


def test_alias_moves_and_refuses_unknown_versions(world: World) -> None:
    operator = token("operator", sub="dave")
    unknown = world.api.call("PUT", "/api/v1/models/iris/aliases/production", operator, {"version": "3.0.0"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "version"
    assert "no version, alias or artifact '3.0.0' (versions: 1.0.0, 2.0.0)" in unknown.json()["error"]
    for body, field_name in (
        ({}, "version"),
        ({"version": ""}, "version"),
        ({"version": 2}, "version"),
        ({"version": "2.0.0", "force": True}, "force"),
    ):
        answer = world.api.call("PUT", "/api/v1/models/iris/aliases/production", operator, body)
        assert answer.status_code == 422 and answer.json()["field"] == field_name, answer.text
    bad_name = world.api.call("PUT", "/api/v1/models/iris/aliases/Prod!", operator, {"version": "2.0.0"})
    assert bad_name.status_code == 422 and "is not a name" in bad_name.json()["error"]

    _, moved = world.api.change("PUT", "/api/v1/models/iris/aliases/production", operator, {"version": "2.0.0"})
    assert moved["status"] == "succeeded", moved
    assert moved["result"]["version"]["version"] == "2.0.0" and moved["result"]["previous"]["version"] == "1.0.0"
    shown = world.api.call("GET", "/api/v1/models/iris/versions/production", token("viewer")).json()
    assert shown["version"] == "2.0.0"
    assert world.api.audit()[-1]["change"] == {
        "model": "iris",
        "alias": "production",
        "version": "2.0.0",
        "artifact_id": "b2" * 8,
        "previous_version": "1.0.0",
    }
    _, back = world.api.change("PUT", "/api/v1/models/iris/aliases/production", operator, {"version": "1.0.0"})
    assert back["status"] == "succeeded" and back["result"]["changed"]


# -- operations -------------------------------------------------------------------------------------------


def test_a_deploy_whose_needs_did_not_pass_is_refused_at_once_and_writes_nothing(world: World) -> None:
    answer = world.api.call("POST", "/api/v1/runs/iris-nogate/deploy", token("operator"), {})
    assert answer.status_code == 409, answer.text
    assert "needs stage 'gate' (failed) and stage 'perf' (not run) of run 'iris-nogate'" in answer.json()["error"]
    run = world.api.call("GET", "/api/v1/runs/iris-nogate", token("viewer")).json()
    assert [s["stage"] for s in run["stages"]] == ["train", "gate"]


def test_a_failed_operation_says_why_with_the_status_the_request_would_have_had(world: World) -> None:
    """wine-run's model folder does not exist: the rollback is accepted (its train passed), then its stage
    cannot read legion.yaml. The operation fails with 409 and the reason; the run records the attempt."""
    operator = token("operator", sub="frank")
    _, operation = world.api.change("POST", "/api/v1/runs/wine-run/rollback", operator)
    assert operation["status"] == "failed" and operation["result"] is None, operation
    assert operation["error"]["status"] == 409 and "wine-src" in operation["error"]["error"], operation
    assert (operation["action"], operation["model"], operation["requested_by"]) == ("rollback", "wine", "frank")
    assert operation["started_at"] and operation["finished_at"]
    stages = world.api.call("GET", "/api/v1/runs/wine-run", token("viewer")).json()["stages"]
    assert [(s["stage"], s["status"]) for s in stages] == [("train", "passed"), ("rollback", "error")]
    ended = world.api.audit()[-1]
    assert (ended["sub"], ended["status"], ended["outcome"], ended["operation"]) == (
        "frank",
        409,
        "conflict",
        operation["id"],
    )
    assert "wine-src" in ended["reason"]


def test_operations_are_read_like_their_model(world: World) -> None:
    _, operation = world.api.change("POST", "/api/v1/runs/wine-run/rollback", token("operator"))
    location = operation["location"]
    assert world.api.call("GET", location, token("viewer", models=["wine"])).json()["id"] == operation["id"]
    other = world.api.call("GET", location, token("viewer", models=["iris"]))
    assert other.status_code == 403 and "does not cover model 'wine'" in other.json()["error"]
    unknown = world.api.call("GET", "/api/v1/operations/" + "f" * 32, token("viewer"))
    assert unknown.status_code == 404 and unknown.json()["field"] == "operation_id"
    assert "no operation 'fff" in unknown.json()["error"]


# -- audit log, errors, OpenAPI ---------------------------------------------------------------------------


def test_mutations_are_audited_reads_are_not_and_no_token_is_written(world: World) -> None:
    before = len(world.api.audit())
    world.api.call("GET", "/api/v1/models", token("viewer"))
    assert len(world.api.audit()) == before
    world.api.call("PUT", "/api/v1/models/iris/routes", None, {"weights": {}})
    world.api.call("PUT", "/api/v1/models/iris/routes", token("viewer", sub="eve"), {"weights": {}})
    world.api.call("DELETE", "/api/v1/models/iris/deployments", token("operator", sub="mallory"))
    added = world.api.audit()[before:]
    assert [(e["sub"], e["status"], e["outcome"]) for e in added] == [
        (None, 401, "unauthenticated"),
        ("eve", 403, "denied"),
        ("mallory", 403, "denied"),
    ]
    assert all({"time", "sub", "role", "method", "path", "status", "outcome"} <= set(e) for e in added)
    text = (world.api.home / "audit.log").read_text()
    assert ISSUED and not [t for t in ISSUED if t in text]
    assert "eyJ" not in text and JWT_SECRET not in text  # no JWT at all (their header always starts so)
    assert (world.api.home / "audit.log").stat().st_mode & 0o777 == 0o600


def test_unknown_paths_and_methods_answer_json(world: World) -> None:
    viewer = token("viewer")
    answer = world.api.call("GET", "/api/v1/nothing", viewer)
    assert answer.status_code == 404 and "no endpoint /api/v1/nothing" in answer.json()["error"]
    answer = world.api.call("GET", "/api/v1/models/iris/routes", viewer)
    assert answer.status_code == 405 and answer.json()["field"] is None


def test_health_and_openapi_need_no_token(world: World) -> None:
    assert world.api.call("GET", "/health/ready").json() == {"status": "ready"}
    document = world.api.call("GET", "/api/v1/openapi.json").json()
    assert document == world.api.call("GET", "/openapi.json").json()
    operations = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert {(e.method, e.full_path) for e in ENDPOINTS} <= operations
    put_routes = document["paths"]["/api/v1/models/{name}/routes"]["put"]
    assert put_routes["x-roles"] == ["operator", "admin"] and "422" in put_routes["responses"]


def test_openapi_contract_no_5xx_from_client_input(world: World) -> None:
    """Schemathesis with an operator token: answers match the document, never a 5xx. Generated names and ids
    find nothing to change here (404), so the other tests' state is safe."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{world.api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {token('operator')}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(ENDPOINTS) + 1

    def contract(op: Any, mode: Any) -> Any:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        return check

    for op in operations:
        if op.method.upper() == "DELETE":  # admin only: the operator gets 403 (the role table checks it)
            continue
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if op.method.upper() == "PUT" else [])
        for mode in modes:
            contract(op, mode)()


# -- the CLI ----------------------------------------------------------------------------------------------


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *args: str
) -> tuple[int, str, str]:
    """`legion-ci ARGS` in this process (the real parser and handlers), with `env`'s LEGION_* settings."""
    for key in [k for k in os.environ if k.startswith("LEGION_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("LEGION_"):
            monkeypatch.setenv(key, value)
    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse refusing an argument
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_token_create_admin_issues_a_working_token(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _cli(
        monkeypatch,
        capsys,
        world.api.env,
        "token",
        "create-admin",
        "--role",
        "viewer",
        "--sub",
        "ci-bot",
        "--model",
        "iris",
        "--ttl",
        "10m",
    )
    assert status == 0, err
    value = out.strip()
    ISSUED.add(value)
    claims = jwt.decode(value, options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["aud"], claims["models"]) == ("ci-bot", "viewer", AUDIENCE, ["iris"])
    assert claims["exp"] - claims["iat"] == 600
    assert [m["name"] for m in world.api.call("GET", "/api/v1/models", value).json()["models"]] == ["iris"]
    status, _, err = _cli(monkeypatch, capsys, world.api.env, "token", "create-admin", "--role", "admin", "--ttl", "3h")
    assert status == 2 and "longer than the API accepts (7200s" in err
    status, _, err = _cli(monkeypatch, capsys, world.api.env, "token", "create-admin", "--role", "root")
    assert status == 2 and "--role: 'root' is not one of viewer, operator, admin" in err


def test_api_serve_refuses_to_run_without_token_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = api_env(tmp_path / "home", {"LEGION_AUTH": "off"})
    status, _, err = _cli(monkeypatch, capsys, env, "api", "serve", "--port", "0")
    assert status == 2 and "the management API never runs without token checks" in err
    status, _, err = _cli(monkeypatch, capsys, api_env(tmp_path / "home"), "api", "serve", "--port", "http")
    assert status == 2 and "invalid port 'http'" in err


# -- a real deploy, routes, rollback and undeploy through Ansible ------------------------------------------


@pytest.mark.slow
def test_deploy_route_rollback_and_undeploy_a_model_for_real(world: World, iris_artifact: Path) -> None:
    """iris-live: a run whose gate passed and perf was skipped, deployed through the API (deploy.yml starts a
    model server and the router), rerouted, rolled back (rollback.yml), then undeployed (the router stops)."""
    home = world.api.home
    source = home / "iris-live-src"
    shutil.copytree(ROOT / "examples" / "iris", source)
    spec = yaml.safe_load((source / "legion.yaml").read_text())
    spec["name"] = "iris-live"
    spec["deploy"].update(replicas=1, traffic_weight=20, auth=True)
    (source / "legion.yaml").write_text(yaml.safe_dump(spec))
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        version_id = _register(
            registry, iris_artifact, home / "artifacts" / "iris-live", "iris-live", "1.0.0", "d4" * 8
        )
        registry.ensure_run("live-run", "iris-live", str(source), "push")
        registry.record_stage("live-run", "train", StageStatus.PASSED, "trained", {"version_id": version_id})
        registry.record_stage("live-run", "gate", StageStatus.PASSED, "all thresholds met")
        registry.record_stage("live-run", "perf", StageStatus.SKIPPED, "skipped: LEGION_SKIP_PERF_REASON=api test")
    finally:
        registry.close()
    operator, admin = token("operator", sub="deployer"), token("admin", sub="root-ops")
    try:
        bad = world.api.call("POST", "/api/v1/runs/live-run/deploy", operator, {"weight": 0})
        assert bad.status_code == 422 and bad.json()["field"] == "weight"

        _, deployed = world.api.change("POST", "/api/v1/runs/live-run/deploy", operator, {"weight": 30}, timeout=300)
        assert deployed["status"] == "succeeded", deployed
        outputs = deployed["result"]["outputs"]
        assert deployed["result"]["status"] == "passed" and outputs["weight"] == 100  # alone: all the traffic
        assert deployed["log"]  # the stage's last log lines
        assert httpx.get(f"{outputs['urls'][0]}/health/ready", timeout=5).status_code == 200
        model = world.api.call("GET", "/api/v1/models/iris-live", token("viewer")).json()
        assert [d["id"] for d in model["deployments"]] == [outputs["deployment_id"]]
        assert model["stable_url"] == outputs["url"]

        only = str(outputs["deployment_id"])
        _, routed = world.api.change("PUT", "/api/v1/models/iris-live/routes", operator, {"weights": {only: 100}})
        assert routed["status"] == "succeeded", routed
        assert (
            world.api.call("PUT", "/api/v1/models/iris-live/routes", operator, {"weights": {only: 50}}).status_code
            == 422
        )

        _, rolled = world.api.change("POST", "/api/v1/runs/live-run/rollback", operator, timeout=300)
        assert rolled["status"] == "succeeded", rolled
        assert "rolled back iris-live 1.0.0" in rolled["result"]["summary"]
        assert world.api.call("GET", "/api/v1/models/iris-live", token("viewer")).json()["deployments"] == []
        run = world.api.call("GET", "/api/v1/runs/live-run", token("viewer")).json()
        assert [s["stage"] for s in run["stages"]][-2:] == ["deploy", "rollback"]

        _, gone = world.api.change("DELETE", "/api/v1/models/iris-live/deployments", admin, timeout=300)
        assert gone["status"] == "succeeded" and gone["result"]["retired"] == []
        entries = [e for e in world.api.audit() if e["sub"] in ("deployer", "root-ops") and e["status"] == 200]
        assert [e["method"] for e in entries] == ["POST", "PUT", "POST", "DELETE"]
        assert entries[0]["change"]["deployment_id"] == outputs["deployment_id"]
    finally:
        from legion_ci.deploy import local_router, rollout

        settings = load_settings(str(home))
        registry = Registry.from_settings(settings)
        try:
            rollout.undeploy(settings, registry, "iris-live", None, home / "teardown", lambda _line: None)
        finally:
            registry.close()
        local_router.stop(settings)


def test_malformed_token_fields_are_401_never_5xx(world: World) -> None:
    for name, value in malformed_tokens(JWT_SECRET, AUDIENCE).items():
        ISSUED.add(value)
        answer = world.api.call("GET", "/api/v1/models", value)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["error"] and value not in answer.text, name
    assert world.api.call("GET", "/api/v1/models", token("viewer")).status_code == 200
