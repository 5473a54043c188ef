"""Stage deploy: start the candidate beside production (which keeps serving until promote)."""

from __future__ import annotations

from legion_ci.deploy import local
from legion_ci.errors import StageError
from legion_ci.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec, version = ctx.loaded.spec, ctx.candidate
    if ctx.target != "local":
        raise StageError("deploy", f"target {ctx.target!r} is not available in this version (expected 'local')")
    record, started = local.deploy(ctx.settings, ctx.registry, version, spec, ctx.traffic_weight)
    urls = [e["url"] for e in record.endpoints]
    verb = "started" if started else "already serving"
    return StageResult("passed", f"{verb} {version.label} on {', '.join(urls)}",
                       {"deployment_id": record.id, "urls": urls, "started": started})
