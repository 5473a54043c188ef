"""Stage deploy: start the candidate beside production at the spec's traffic weight (all of the traffic
when nothing serves yet), through ansible/deploy.yml; production keeps serving until promote retires it."""

from __future__ import annotations

from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout
from legion_ci.pipeline.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec, version = ctx.loaded.spec, ctx.candidate
    deployed = rollout.deploy(
        ctx.settings, ctx.registry, version, spec, ctx.traffic_weight, ctx.target, ctx.stage_dir(), ctx.log
    )
    record = deployed.deployment
    beside = [
        f"{d.detail.get('version')} at {d.weight}%" for d in ctx.registry.deployments(spec.name) if d.id != record.id
    ]
    verb = "started" if deployed.started else "already serving:"
    where = f"beside {', '.join(beside)}" if beside else "alone"
    url = rollout.stable_url(deployed.router_url, spec.name)
    summary = f"{verb} {version.label} at {record.weight}% {where}, {len(deployed.urls)} replica(s)"
    return StageResult(
        StageStatus.PASSED,
        summary + (f"; stable URL {url}" if url else ""),
        {
            "deployment_id": record.id,
            "urls": deployed.urls,
            "started": deployed.started,
            "weight": record.weight,
            "target": record.target,
            "router_url": deployed.router_url,
            "url": url,
        },
    )
