"""GET handlers: models, one model, one version's manifest, runs with their stages."""

from __future__ import annotations

from legion_ci.api import fields, views
from legion_ci.api.call import Call
from legion_ci.api.errors import ApiError
from legion_ci.api.jsonio import Reply
from legion_ci.core.errors import NotFoundError
from legion_ci.core.processes import ours
from legion_ci.core.registry import VersionRecord
from legion_ci.core.settings import Settings
from legion_ci.deploy import local_router, rollout


def list_models(call: Call) -> Reply:
    """Every model the token covers, with its production version and counts."""
    out = []
    for name in call.registry.model_names():
        if not call.principal.covers(name):
            continue
        production = call.registry.alias(name, "production")
        out.append(
            {
                "name": name,
                "production": production.version if production else None,
                "production_artifact_id": production.artifact_id if production else None,
                "aliases": sorted(call.registry.aliases_of(name)),
                "versions": len(call.registry.versions(name)),
                "active_deployments": len(call.registry.deployments(name)),
            }
        )
    return Reply(200, {"models": out})


def get_model(call: Call) -> Reply:
    name = call.known_model()
    registry = call.registry
    by_version = views.aliases_by_version(registry, name)
    versions = {v.id: v for v in registry.versions(name)}
    return Reply(
        200,
        {
            "name": name,
            "aliases": {
                alias: {"version_id": vid, "version": versions[vid].version if vid in versions else None}
                for alias, vid in sorted(registry.aliases_of(name).items())
            },
            "versions": [views.version(v, by_version.get(v.id, [])) for v in versions.values()],
            "deployments": [views.deployment(d) for d in registry.deployments(name)],
            "stable_url": rollout.stable_url(router_url(call.settings), name),
        },
    )


def router_url(settings: Settings) -> str | None:
    """The local router's URL while its process lives (no HTTP call on the request path)."""
    router = local_router.read_state(settings)
    return router.url if router and ours(router.pid, "router") else None


def resolve(call: Call, model: str, ref: str, field: str) -> VersionRecord:
    """A version by alias, version string or artifact id (prefix); 404 naming the field otherwise."""
    try:
        return call.registry.resolve(model, ref)
    except NotFoundError as exc:
        raise ApiError(404, exc.message, field) from None


def get_version(call: Call) -> Reply:
    name = call.known_model()
    v = resolve(call, name, call.params["ref"], "ref")
    aliases = views.aliases_by_version(call.registry, name).get(v.id, [])
    return Reply(200, views.version_full(v, aliases, call.registry.deployments(name, active_only=False)))


def model_runs(call: Call) -> Reply:
    runs = call.registry.runs(call.model, fields.limit(call.query))
    if not runs:
        call.known_model()
    return Reply(
        200, {"model": call.model, "runs": [views.run(r, call.registry.stages(r.id), full=False) for r in runs]}
    )


def model_events(call: Call) -> Reply:
    """A model's decisions (rollout evaluations) with their evidence, newest last."""
    events = call.registry.events(call.model, limit=fields.limit(call.query))
    if not events:
        call.known_model()
    return Reply(
        200,
        {
            "model": call.model,
            "events": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "action": e.action,
                    "version_id": e.version_id,
                    "run_id": e.run_id,
                    "summary": e.summary,
                    "created_at": e.created_at,
                    "evidence": e.detail,
                }
                for e in events
            ],
        },
    )


def get_run(call: Call) -> Reply:
    run = call.registry.run(call.params["run_id"])
    call.principal.require_model(run.model)
    return Reply(200, views.run(run, call.registry.stages(run.id), full=True))


def get_operation(call: Call) -> Reply:
    """One operation this API process accepted; 404 for an unknown id, 403 when the token does not cover
    the operation's model."""
    op_id = call.params["operation_id"]
    op = call.operations.get(op_id) if call.operations else None
    if op is None:
        raise ApiError(
            404, f"no operation {op_id!r} (operations live in the API process that accepted them)", "operation_id"
        )
    call.principal.require_model(op.model)
    return Reply(200, op.view(), headers={} if op.status.finished else {"retry-after": "1"})
