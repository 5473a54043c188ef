"""/openapi.json: the endpoint table as an OpenAPI 3.0 document, roles included (x-roles)."""

from __future__ import annotations

import re
from typing import Any

from legion_ci import __version__
from legion_ci.api.endpoints import ENDPOINTS, PREFIX, Endpoint
from legion_ci.api.fields import ALIAS
from legion_ci.api.operations import OperationStatus
from legion_ci.api.roles import roles_with
from legion_ci.core.spec import NAME

ERRORS = {
    400: "Malformed body (not JSON, not an object)",
    401: "Missing, invalid, expired or revoked token",
    403: "The token's role or models claim does not allow this",
    404: "No such model, version, run or operation",
    409: "The model's or run's state does not allow it now (stages not passed, no active deployment)",
    413: "Body over 64 KiB",
    422: "A field is wrong (see `field`)",
    500: "The server failed (see its log)",
    503: "Registry unavailable",
}
STR, INT, NULL_STR = {"type": "string"}, {"type": "integer"}, {"type": "string", "nullable": True}
OBJ = {"type": "object", "additionalProperties": True}
PATH_PARAMS = {
    "name": {"type": "string", "pattern": NAME.pattern},
    "alias": {"type": "string", "pattern": ALIAS.pattern},
    "operation_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


DEPLOYMENT = _obj(
    ["id", "version", "status", "weight"],
    id=INT,
    version_id=INT,
    version=NULL_STR,
    target=STR,
    status=STR,
    weight={"type": "integer", "minimum": 0, "maximum": 100},
    replicas=INT,
    endpoints={"type": "array", "items": _obj(["url"], url=STR)},
    created_at=STR,
    updated_at=STR,
)
VERSION = _obj(
    ["id", "version", "artifact_id"],
    id=INT,
    version=STR,
    artifact_id=STR,
    created_at=STR,
    aliases={"type": "array", "items": STR},
    metrics=OBJ,
    lineage=OBJ,
    image=NULL_STR,
    image_digest=NULL_STR,
)
STAGE_ANSWER = _obj(
    ["run_id", "stage", "status", "summary"],
    run_id=STR,
    model=STR,
    stage=STR,
    status=STR,
    summary=STR,
    outputs=OBJ,
)
OPERATION = _obj(
    ["id", "action", "model", "status", "created_at", "result", "error", "location"],
    id=STR,
    action={"type": "string", "enum": ["alias", "routes", "deploy", "rollback", "undeploy"]},
    model=STR,
    status={"type": "string", "enum": [s.value for s in OperationStatus]},
    requested_by=NULL_STR,
    method=STR,
    path=STR,
    created_at=STR,
    started_at=NULL_STR,
    finished_at=NULL_STR,
    result={
        "type": "object",
        "nullable": True,
        "additionalProperties": True,
        "description": "once succeeded: what the change did (AliasChange, Routes, StageAnswer or Undeploy)",
    },
    error={
        "type": "object",
        "nullable": True,
        "required": ["error", "status"],
        "properties": {"error": STR, "field": NULL_STR, "status": INT},
        "description": "once failed: why, and the HTTP status the request would have had (409 locked, ...)",
    },
    log={"type": "array", "items": STR, "description": "the last lines the work logged"},
    location={"type": "string", "description": "where to poll this operation"},
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj(["error", "field"], error=STR, field=NULL_STR),
    "ModelList": _obj(
        ["models"],
        models={
            "type": "array",
            "items": _obj(
                ["name"],
                name=STR,
                production=NULL_STR,
                production_artifact_id=NULL_STR,
                aliases={"type": "array", "items": STR},
                versions=INT,
                active_deployments=INT,
            ),
        },
    ),
    "Deployment": DEPLOYMENT,
    "Version": VERSION,
    "Model": _obj(
        ["name", "aliases", "versions", "deployments"],
        name=STR,
        aliases=OBJ,
        versions={"type": "array", "items": _ref("Version")},
        deployments={"type": "array", "items": _ref("Deployment")},
        stable_url=NULL_STR,
    ),
    "VersionDetail": {
        "allOf": [
            _ref("Version"),
            _obj(["manifest"], path=STR, manifest=OBJ, deployments={"type": "array", "items": _ref("Deployment")}),
        ]
    },
    "RunList": _obj(["model", "runs"], model=STR, runs={"type": "array", "items": OBJ}),
    "EventList": _obj(["model", "events"], model=STR, events={"type": "array", "items": OBJ}),
    "Run": _obj(
        ["id", "model", "status", "stages"],
        id=STR,
        model=STR,
        flow=STR,
        status=STR,
        model_dir=STR,
        created_at=STR,
        updated_at=STR,
        stages={
            "type": "array",
            "items": _obj(
                ["stage", "status"],
                stage=STR,
                status=STR,
                summary=STR,
                outputs=OBJ,
                attempts=INT,
                started_at=NULL_STR,
                finished_at=NULL_STR,
                seconds={"type": "number", "nullable": True},
            ),
        },
    ),
    "AliasRequest": {
        **_obj(
            ["version"],
            version={
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "a version, an artifact id (prefix) or an alias",
            },
        ),
        "additionalProperties": False,
    },
    "AliasChange": _obj(
        ["model", "alias", "version", "previous", "changed"],
        model=STR,
        alias=STR,
        version=_ref("Version"),
        previous={"type": "object", "nullable": True},
        changed={"type": "boolean"},
    ),
    "RoutesRequest": {
        **_obj(
            ["weights"],
            weights={
                "type": "object",
                "minProperties": 1,
                "description": "deployment id → percent; every active deployment, adding up to 100",
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        ),
        "additionalProperties": False,
    },
    "Routes": _obj(
        ["model", "deployments"], model=STR, deployments={"type": "array", "items": _ref("Deployment")}, previous=OBJ
    ),
    "DeployRequest": {
        **_obj(
            [],
            weight={"type": "integer", "minimum": 1, "maximum": 100},
            target={"type": "string", "enum": ["local", "kubernetes"]},
        ),
        "additionalProperties": False,
    },
    "StageAnswer": STAGE_ANSWER,
    "Operation": OPERATION,
    "Undeploy": _obj(
        ["model", "retired"],
        model=STR,
        version=NULL_STR,
        retired={"type": "array", "items": INT},
    ),
}
ANSWERS = {
    "list_models": "ModelList",
    "get_model": "Model",
    "get_version": "VersionDetail",
    "model_runs": "RunList",
    "model_events": "EventList",
    "get_run": "Run",
    "get_operation": "Operation",
    "put_alias": "AliasChange",
    "put_routes": "Routes",
    "deploy_run": "StageAnswer",
    "rollback_run": "StageAnswer",
    "undeploy": "Undeploy",
}
REQUESTS = {"put_alias": "AliasRequest", "put_routes": "RoutesRequest", "deploy_run": "DeployRequest"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(e: Endpoint) -> dict[str, Any]:
    roles = roles_with(e.permission)
    params = [
        {"name": p, "in": "path", "required": True, "schema": PATH_PARAMS.get(p, STR)}
        for p in re.findall(r"{(\w+)}", e.path)
    ]
    params += [
        {"name": q, "in": "query", "required": False, "description": d, "schema": schema} for q, d, schema in e.query
    ]
    if e.is_change:
        accepted = _json(
            _ref("Operation"),
            f"Accepted: the change runs in the background; poll the Location (GET {PREFIX}/operations/{{id}}) "
            f"until its status is succeeded (`result`: {ANSWERS[e.name]}) or failed (`error`)",
        )
        accepted["headers"] = {"Location": {"description": "the operation to poll", "schema": STR}}
        responses = {"202": accepted}
    else:
        responses = {"200": _json(_ref(ANSWERS[e.name]), "OK")}
    for code in sorted({*e.errors, 401, 403, 500, 503}):
        responses[str(code)] = _json(_ref("Error"), ERRORS[code])
    op: dict[str, Any] = {
        "operationId": e.name,
        "summary": e.summary,
        "description": f"Roles: {', '.join(roles)}.",
        "x-roles": roles,
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses,
    }
    if e.name in REQUESTS:
        op["requestBody"] = {
            "required": e.body == "required",
            "content": {"application/json": {"schema": _ref(REQUESTS[e.name])}},
        }
    return op


def build_openapi(audience: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.full_path, {})[e.method.lower()] = _operation(e)
    ready = {
        "get": {
            "operationId": "ready",
            "summary": "Ready when the registry answers and the audit log is writable (no token needed)",
            "security": [],
            "responses": {
                "200": _json(_obj(["status"], status=STR), "Ready"),
                "503": _json(_ref("Error"), ERRORS[503]),
            },
        }
    }
    paths["/health/ready"] = ready
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "legion-ci management API",
            "version": __version__,
            "description": "Inspect, route, promote, deploy and roll back models. A change answers 202 with an "
            "operation to poll; the work runs in the background. Every call needs a JWT "
            f"with audience {audience!r} and a `role` claim (viewer, operator, admin); an "
            'optional `models` claim (patterns like "iris", "iris:1.*") limits the models.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
