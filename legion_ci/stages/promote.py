"""Stage promote: production moves to the candidate; the versions it replaces stop serving."""

from __future__ import annotations

from legion_ci.deploy import local
from legion_ci.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec, candidate = ctx.loaded.spec, ctx.candidate
    deployed = ctx.output("deploy")
    previous = ctx.registry.set_alias(spec.name, "production", candidate.id)
    retired = []
    for deployment in ctx.registry.deployments(spec.name):
        if deployment.id == deployed["deployment_id"]:
            ctx.registry.update_deployment(deployment.id, weight=100)
        elif deployment.target == "local":
            local.retire(ctx.registry, deployment)
            retired.append(deployment.id)
    if previous == candidate.id and not retired:
        return StageResult("passed", f"{candidate.label} is already production; nothing to promote",
                           {"version_id": candidate.id, "changed": False})
    before = ctx.registry.version_by_id(previous).label if previous else "none"
    return StageResult("passed", f"production: {before} -> {candidate.label}; retired {len(retired)} deployment(s)",
                       {"version_id": candidate.id, "previous_version_id": previous, "changed": True,
                        "retired": retired})
