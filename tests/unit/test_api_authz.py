"""The management API's pieces without a server: roles and scopes, token round trips, the audit log,
field checks, route weights, error statuses and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from legion_ci.api.audit import AuditLog, outcome
from legion_ci.api.authn import DEFAULT_AUDIENCE, ManagementAuth, auth_config, bearer
from legion_ci.api.changes import check_weights, parse_weights
from legion_ci.api.endpoints import ENDPOINTS
from legion_ci.api.errors import ApiError, status_of
from legion_ci.api.fields import alias_name, limit, percent, unknown_keys
from legion_ci.api.openapi import build_openapi
from legion_ci.api.roles import ROLES, Permission, Principal, roles_with
from legion_ci.api.tokens import create_management_token
from legion_ci.auth.jwt import AuthError
from legion_ci.core.errors import (
    ConfigError,
    DeployError,
    LockedError,
    NeedsUnmet,
    NotFoundError,
    RegistryError,
    StageFailed,
)
from legion_ci.core.registry import DeploymentRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import DeploymentStatus

SECRET = "unit-secret-0123456789abcdef0123456789abcdef"

# role → the permissions it must have and must not have: the whole grant table, spelled out.
GRANTS = {
    "viewer": ({Permission.READ}, {Permission.OPERATE, Permission.ADMIN}),
    "operator": ({Permission.READ, Permission.OPERATE}, {Permission.ADMIN}),
    "admin": ({Permission.READ, Permission.OPERATE, Permission.ADMIN}, set()),
}


@pytest.fixture
def auth_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in (
        "LEGION_AUTH",
        "LEGION_JWKS",
        "LEGION_JWT_ISSUER",
        "LEGION_JWT_REVOKED",
        "LEGION_JWT_AUDIENCE",
        "LEGION_API_AUDIENCE",
        "LEGION_JWT_SECRET_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LEGION_JWT_SECRET", SECRET)
    monkeypatch.setenv("LEGION_JWT_MAX_TTL", "2h")
    return load_settings()  # settings are read once: after the environment is set


def principal(role: str = "viewer", models: list[str] | None = None) -> Principal:
    claims: dict[str, Any] = {"sub": "alice", "role": role}
    if models is not None:
        claims["models"] = models
    return Principal.from_claims(claims)


# -- roles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(GRANTS))
def test_each_role_grants_exactly_its_permissions(role: str) -> None:
    granted, refused = GRANTS[role]
    who = principal(role)
    assert {p for p in Permission if who.may(p)} == granted
    for permission in refused:
        with pytest.raises(ApiError) as info:
            who.require(permission, "PUT", "/api/v1/models/iris/routes")
        assert info.value.status == 403
        assert f"role {role!r} may not PUT /api/v1/models/iris/routes" in info.value.message
    assert set(ROLES) == set(GRANTS)


def test_roles_with_lists_every_role_holding_a_permission() -> None:
    assert roles_with(Permission.READ) == ["viewer", "operator", "admin"]
    assert roles_with(Permission.OPERATE) == ["operator", "admin"]
    assert roles_with(Permission.ADMIN) == ["admin"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "x"}, "token has no 'role' claim (expected one of viewer, operator, admin)"),
        ({"role": "root"}, "token's role 'root' is not one of viewer, operator, admin"),
        ({"role": ["admin"]}, "is not one of"),
        ({"role": "admin", "models": "iris"}, "'models' claim is not a list"),
        ({"role": "admin", "models": ["iris", 3]}, "'models' claim is not a list"),
    ],
)
def test_malformed_role_or_models_claims_are_403(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(ApiError) as info:
        Principal.from_claims(claims)
    assert info.value.status == 403 and reason in info.value.message


def test_scope_reads_by_model_name_changes_by_every_version_touched() -> None:
    anything = principal("admin")
    assert anything.covers("iris") and anything.covers("iris", "9.0.0")
    scoped = principal("operator", ["iris:1.*", "fraud-*"])
    assert scoped.covers("iris") and scoped.covers("fraud-eu") and not scoped.covers("wine")
    assert scoped.covers("iris", "1.2.0") and not scoped.covers("iris", "2.0.0")
    scoped.require_model("iris", ["1.0.0", "1.1.0"])
    with pytest.raises(ApiError, match=r"does not cover version\(s\) 2.0.0 of model 'iris'"):
        scoped.require_model("iris", ["1.0.0", "2.0.0"])
    with pytest.raises(ApiError, match="does not cover model 'wine'") as info:
        scoped.require_model("wine")
    assert info.value.status == 403
    assert not principal("viewer", []).covers("iris")


# -- tokens -----------------------------------------------------------------------------------------------


def test_an_issued_token_verifies_into_its_principal(auth_env: Settings) -> None:
    auth = ManagementAuth(auth_config(auth_env))
    value = create_management_token(SECRET, "operator", "bob", 600, DEFAULT_AUDIENCE, models=["iris"])
    who = asyncio.run(auth.principal(f"Bearer {value}"))
    assert who == Principal("bob", "operator", ("iris",))


def test_model_server_tokens_and_other_audiences_are_refused(
    auth_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = ManagementAuth(auth_config(auth_env))
    value = create_management_token(SECRET, "admin", "bob", 600, "legion-ci")
    with pytest.raises(AuthError, match="audience is not 'legion-ci-management'") as info:
        asyncio.run(auth.principal(f"Bearer {value}"))
    assert info.value.status == 401
    monkeypatch.setenv("LEGION_API_AUDIENCE", "ops.example")
    assert ManagementAuth(auth_config(load_settings())).audience == "ops.example"


def test_expired_and_too_long_tokens_are_refused(auth_env: Settings) -> None:
    auth = ManagementAuth(auth_config(auth_env))
    now = int(time.time())
    expired = jwt.encode({"role": "admin", "aud": DEFAULT_AUDIENCE, "iat": now - 100, "exp": now - 10}, SECRET)
    with pytest.raises(AuthError, match="token expired at"):
        asyncio.run(auth.principal(f"Bearer {expired}"))
    too_long = create_management_token(SECRET, "admin", "bob", 3 * 3600, DEFAULT_AUDIENCE)
    with pytest.raises(AuthError, match="lifetime exceeds the maximum of 7200s"):
        asyncio.run(auth.principal(f"Bearer {too_long}"))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Basic abc", "must be 'Bearer <JWT>'"),
        ("Bearer ", "must be 'Bearer <JWT>'"),
    ],
)
def test_bearer_header_problems(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        bearer(header)


def test_the_api_never_runs_with_auth_off(auth_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_AUTH", "off")
    with pytest.raises(ConfigError, match="never runs without token checks"):
        auth_config(load_settings())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "root"}, "--role: 'root' is not one of viewer, operator, admin"),
        ({"ttl_seconds": 0}, "not a positive number of seconds"),
        ({"sub": "  "}, "--sub: the subject must not be empty"),
    ],
)
def test_token_creation_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "secret": SECRET,
        "role": "viewer",
        "sub": "x",
        "ttl_seconds": 60,
        "audience": DEFAULT_AUDIENCE,
        **kwargs,
    }
    with pytest.raises(ConfigError, match=message):
        create_management_token(**args)


def test_tokens_carry_issuer_and_models_only_when_given() -> None:
    plain = jwt.decode(create_management_token(SECRET, "viewer", "x", 60, "aud"), options={"verify_signature": False})
    assert "models" not in plain and "iss" not in plain and plain["role"] == "viewer" and plain["jti"]
    full = jwt.decode(
        create_management_token(SECRET, "admin", "x", 60, "aud", "https://idp", ["iris"]),
        options={"verify_signature": False},
    )
    assert full["iss"] == "https://idp" and full["models"] == ["iris"]


# -- audit log --------------------------------------------------------------------------------------------


def test_audit_lines_are_whole_json_lines_in_a_private_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "home" / "audit.log")
    assert (log.path.stat().st_mode & 0o777) == 0o600

    def write(n: int) -> None:
        for i in range(50):
            log.record({"sub": f"t{n}", "method": "PUT", "path": "/x" * 200, "status": 200, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.path.read_text().splitlines()
    assert len(lines) == 200
    entries = [json.loads(line) for line in lines]
    assert all(e["time"].endswith("+00:00") and e["status"] == 200 for e in entries)
    assert log.writable()


def test_an_unwritable_audit_log_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"audit log .* cannot be written"):
        AuditLog(blocker / "audit.log")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "ok"),
        (400, "invalid"),
        (202, "accepted"),
        (401, "unauthenticated"),
        (403, "denied"),
        (404, "not-found"),
        (405, "not-allowed"),
        (409, "conflict"),
        (413, "invalid"),
        (422, "invalid"),
        (500, "error"),
        (503, "error"),
    ],
)
def test_audit_outcomes(status: int, expected: str) -> None:
    assert outcome(status) == expected


# -- fields and weights -----------------------------------------------------------------------------------


def test_percent_limit_alias_and_unknown_keys() -> None:
    assert percent(0, "w") == 0 and percent(100, "w") == 100
    for bad in (-1, 101, 1.5, True, "50", None):
        with pytest.raises(ApiError) as info:
            percent(bad, "weights.3")
        assert info.value.status == 422 and info.value.field == "weights.3"
    with pytest.raises(ApiError, match="expected a percentage, 1-100"):
        percent(0, "weight", low=1)
    assert limit({}) == 20 and limit({"limit": "200"}) == 200
    for bad in ("0", "201", "abc", "²", "-1", "1.5"):
        with pytest.raises(ApiError, match="not a number from 1 to 200"):
            limit({"limit": bad})
    assert alias_name("production") == "production" and alias_name("canary_2") == "canary_2"
    for bad in ("Production", "1st", "prod\n", "a" * 64, "pr od"):
        with pytest.raises(ApiError, match="is not a name"):
            alias_name(bad)
    with pytest.raises(ApiError, match="unknown field\\(s\\) 'force' \\(expected version\\)") as info:
        unknown_keys({"version": "1", "force": True}, ("version",))
    assert info.value.field == "force"


def _deployment(ident: int, version: str, weight: int) -> DeploymentRecord:
    return DeploymentRecord(
        ident, "iris", ident, "local", DeploymentStatus.SERVING, weight, [], {"version": version}, "", ""
    )


def test_weights_parse_and_check() -> None:
    active = [_deployment(1, "1.0.0", 80), _deployment(2, "2.0.0", 20)]
    wanted = parse_weights({"weights": {"1": 50, "2": 50}})
    assert wanted == {1: 50, 2: 50}
    check_weights("iris", wanted, active)
    cases = [
        (
            {1: 50, 3: 50},
            "weights.3",
            "deployment 3 is not an active deployment of model 'iris' (active: 1 (1.0.0, 80%), 2 (2.0.0, 20%))",
        ),
        ({1: 100}, "weights", "missing: 2"),
        ({1: 70, 2: 20}, "weights", "weights add up to 90, not 100"),
    ]
    for weights, field_name, message in cases:
        with pytest.raises(ApiError) as info:
            check_weights("iris", weights, active)
        assert info.value.status == 422 and info.value.field == field_name and message in info.value.message
    for body, field_name in (
        ({}, "weights"),
        ({"weights": {}}, "weights"),
        ({"weights": {"²": 1}}, "weights.²"),
        ({"weights": {"1": -5}}, "weights.1"),
        ({"weights": {"1": 1}, "x": 1}, "x"),
    ):
        with pytest.raises(ApiError) as info:
            parse_weights(body)
        assert info.value.field == field_name


# -- errors and OpenAPI -----------------------------------------------------------------------------------


def test_error_statuses() -> None:
    assert status_of(ApiError(422, "x")) == 422
    assert status_of(AuthError("x")) == 401 and status_of(AuthError("x", 403)) == 403
    assert status_of(NotFoundError("x")) == 404
    assert status_of(LockedError("x")) == 409
    assert status_of(StageFailed("smoke", "x")) == 409
    assert status_of(NeedsUnmet("deploy", "needs stage 'gate'")) == 409
    assert status_of(RegistryError("x")) == 503
    assert status_of(DeployError("ansible failed")) == 500


def test_openapi_describes_every_endpoint_with_its_roles() -> None:
    document = build_openapi(DEFAULT_AUDIENCE)
    for e in ENDPOINTS:
        operation = document["paths"][e.full_path][e.method.lower()]
        assert operation["x-roles"] == roles_with(e.permission)
        assert operation["security"] == [{"bearer": []}]
        assert {"202" if e.is_change else "200", "401", "403"} <= set(operation["responses"])
        if e.is_change:  # answered by an operation to poll, never by the work itself
            assert "200" not in operation["responses"] and "Location" in operation["responses"]["202"]["headers"]
        refs = json.dumps(operation)
        for name in [part.split('"')[0] for part in refs.split("#/components/schemas/")[1:]]:
            assert name in document["components"]["schemas"], name
    assert document["paths"]["/health/ready"]["get"]["security"] == []
    json.dumps(document)  # serializable as it is


def test_the_docs_roles_table_matches_the_endpoints() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "management-api.md").read_text()
    table = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) == 4
            and cells[0].startswith("`")
            and cells[0][1:].split(" ")[0] in ("GET", "PUT", "POST", "DELETE")
        ):
            table[cells[0].strip("`")] = [role for role, cell in zip(ROLES, cells[1:], strict=True) if cell == "yes"]
    assert table == {f"{e.method} {e.full_path}": roles_with(e.permission) for e in ENDPOINTS}
