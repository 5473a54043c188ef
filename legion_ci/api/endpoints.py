"""Every endpoint once, as data: the app's routes, the OpenAPI document and the docs' roles table read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from legion_ci.api import changes, deploys, reads
from legion_ci.api.call import Call
from legion_ci.api.jsonio import Reply
from legion_ci.api.operations import Change
from legion_ci.api.roles import Permission

PREFIX = "/api/v1"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below PREFIX, with {params}
    permission: Permission
    handler: Callable[[Call], Reply | Change]  # a change answers 202 and runs as an operation
    summary: str
    body: str = "none"  # none | optional | required
    query: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # (name, description, JSON schema)
    errors: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def is_change(self) -> bool:
        """Every method but GET changes something: its handler returns a Change, answered 202."""
        return self.method != "GET"

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/models", Permission.READ, reads.list_models, "Models the token covers, with their production version"
    ),
    Endpoint(
        "GET",
        "/models/{name}",
        Permission.READ,
        reads.get_model,
        "Versions (metrics, lineage), aliases and active deployments (weights, endpoints) of a model",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/models/{name}/versions/{ref}",
        Permission.READ,
        reads.get_version,
        "One version's full manifest; REF is a version, an artifact id (prefix) or an alias",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/models/{name}/runs",
        Permission.READ,
        reads.model_runs,
        "A model's recent runs",
        query=(("limit", "how many, newest first (default 20)", {"type": "integer", "minimum": 1, "maximum": 200}),),
        errors=(404, 422),
    ),
    Endpoint(
        "GET",
        "/models/{name}/events",
        Permission.READ,
        reads.model_events,
        "A model's rollout decisions (advance, promote, rollback, keep-testing), each with its evidence",
        query=(("limit", "how many, the newest (default 20)", {"type": "integer", "minimum": 1, "maximum": 200}),),
        errors=(404, 422),
    ),
    Endpoint(
        "GET",
        "/runs/{run_id}",
        Permission.READ,
        reads.get_run,
        "One run with every stage's result and outputs",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/operations/{operation_id}",
        Permission.READ,
        reads.get_operation,
        "A change's operation: queued, running, succeeded (with its result) or failed (with its error)",
        errors=(404,),
    ),
    Endpoint(
        "PUT",
        "/models/{name}/aliases/{alias}",
        Permission.OPERATE,
        changes.put_alias,
        "Point an alias (production, staging, ...) at a version",
        body="required",
        errors=(400, 404, 409, 413, 422),
    ),
    Endpoint(
        "PUT",
        "/models/{name}/routes",
        Permission.OPERATE,
        changes.put_routes,
        "Set the traffic weights of every active deployment of a model (they must add up to 100)",
        body="required",
        errors=(400, 404, 409, 413, 422),
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/deploy",
        Permission.OPERATE,
        deploys.deploy_run,
        "Deploy a run's candidate beside production (its gate and perf stages must have passed)",
        body="optional",
        errors=(400, 404, 409, 413, 422),
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/rollback",
        Permission.OPERATE,
        deploys.rollback_run,
        "Take a run's candidate out of service; after a promote, the version it replaced serves again",
        body="optional",
        errors=(400, 404, 409, 413, 422),
    ),
    Endpoint(
        "DELETE",
        "/models/{name}/deployments",
        Permission.ADMIN,
        deploys.undeploy,
        "Stop every deployment of a model, or of one version",
        query=(("version", "only this version", {"type": "string"}),),
        errors=(404, 409),
    ),
)
