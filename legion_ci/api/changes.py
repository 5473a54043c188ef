"""PUT handlers: point an alias at a version, set the traffic weights of a model's active deployments.
Each checks the request now and returns the Change that a background operation runs."""

from __future__ import annotations

from typing import Any

from legion_ci.api import fields, views
from legion_ci.api.call import Call
from legion_ci.api.errors import conflict, invalid
from legion_ci.api.operations import Change, Done, Log
from legion_ci.api.reads import resolve
from legion_ci.core.registry import DeploymentRecord
from legion_ci.deploy.weights import TOTAL


def put_alias(call: Call) -> Change:
    """Body {"version": REF}: REF is a version string, an artifact id (prefix) or another alias."""
    name = call.known_model()
    alias = fields.alias_name(call.params["alias"])
    fields.unknown_keys(call.body, ("version",))
    ref = fields.text(call.body, "version")
    target = resolve(call, name, ref, "version")
    before = call.registry.alias(name, alias)
    call.principal.require_model(name, [target.version] + ([before.version] if before else []))
    asked = {"model": name, "alias": alias, "version": target.version, "artifact_id": target.artifact_id}

    def work(log: Log) -> Done:
        with call.locked(name):
            previous_id = call.registry.set_alias(name, alias, target.id)
        previous = call.registry.version_by_id(previous_id) if previous_id is not None else None
        log(f"{alias} of {name}: {previous.version if previous else 'none'} -> {target.version}")
        aliases = views.aliases_by_version(call.registry, name).get(target.id, [])
        body = {
            "model": name,
            "alias": alias,
            "version": views.version(target, aliases),
            "previous": {"id": previous.id, "version": previous.version} if previous else None,
            "changed": previous_id != target.id,
        }
        return Done(body, {**asked, "previous_version": previous.version if previous else None})

    return Change("alias", name, asked, work)


def parse_weights(body: dict[str, Any]) -> dict[int, int]:
    """{"weights": {"<deployment id>": percent, ...}} → {id: percent}; 422 naming the bad entry."""
    fields.unknown_keys(body, ("weights",))
    raw = body.get("weights")
    if not isinstance(raw, dict) or not raw:
        raise invalid('"weights" must be a non-empty object {"<deployment id>": <percent>, ...}', "weights")
    out: dict[int, int] = {}
    for key, value in raw.items():
        if not fields.is_id(key):
            raise invalid(f"weights: {key!r} is not a deployment id (a whole number)", f"weights.{key}")
        out[int(key)] = fields.percent(value, f"weights.{key}")
    return out


def check_weights(model: str, wanted: dict[int, int], active: list[DeploymentRecord]) -> None:
    """Every active deployment named, nothing else, and the percentages adding up to 100."""
    ids = {d.id: d for d in active}
    listing = ", ".join(f"{d.id} ({d.detail.get('version')}, {d.weight}%)" for d in active)
    unknown = sorted(set(wanted) - set(ids))
    if unknown:
        raise invalid(
            f"deployment {unknown[0]} is not an active deployment of model {model!r} (active: {listing})",
            f"weights.{unknown[0]}",
        )
    missing = sorted(set(ids) - set(wanted))
    if missing:
        raise invalid(
            f"weights must name every active deployment of {model!r}; missing: "
            f"{', '.join(map(str, missing))} (active: {listing})",
            "weights",
        )
    total = sum(wanted.values())
    if total != TOTAL:
        raise invalid(
            f"weights add up to {total}, not {TOTAL} ({', '.join(f'{k}: {v}' for k, v in wanted.items())})", "weights"
        )


def put_routes(call: Call) -> Change:
    """Set the traffic split of a model's active deployments in one registry transaction (the router
    follows within half a second). Checked against the active deployments now, and again under the
    model's lock when the operation runs (a deploy in between fails it with the same 409/422)."""
    name = call.known_model()
    wanted = parse_weights(call.body)
    _checked_active(call, name, wanted)
    asked = {"model": name, "weights": {str(k): v for k, v in wanted.items()}}

    def work(log: Log) -> Done:
        with call.locked(name):
            active = _checked_active(call, name, wanted)
            call.registry.set_weights(wanted)
            after = call.registry.deployments(name)
        previous = {str(d.id): d.weight for d in active}
        log(f"weights of {name}: {previous} -> {asked['weights']}")
        body = {"model": name, "deployments": [views.deployment(d) for d in after], "previous": previous}
        return Done(body, {**asked, "previous": previous})

    return Change("routes", name, asked, work)


def _checked_active(call: Call, name: str, wanted: dict[int, int]) -> list[DeploymentRecord]:
    active = call.registry.deployments(name)
    if not active:
        raise conflict(f"model {name!r} has no active deployment to route traffic to")
    call.principal.require_model(name, [str(d.detail.get("version")) for d in active])
    check_weights(name, wanted, active)
    return active
