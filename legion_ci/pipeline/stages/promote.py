"""Stage promote: all traffic moves to the candidate, it becomes production, and the versions it replaces
are drained and stopped (through ansible/undeploy.yml). A second promote changes nothing."""

from __future__ import annotations

from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout
from legion_ci.pipeline.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    candidate = ctx.candidate
    ctx.output("smoke")
    strategy = ctx.loaded.spec.rollout.strategy
    if strategy != "immediate":
        return StageResult(
            StageStatus.PASSED,
            f"rollout strategy {strategy}: {candidate.label} stays at its first step; the "
            f"{candidate.model}-rollout job (`legion-ci evaluate`) advances, promotes or rolls it back by evidence",
            {"version_id": candidate.id, "changed": False, "deferred_to": "evaluate"},
        )
    previous, retired, changed = rollout.promote(ctx.settings, ctx.registry, candidate, ctx.stage_dir(), ctx.log)
    outputs = {"version_id": candidate.id, "previous_version_id": previous, "changed": changed, "retired": retired}
    if not changed:
        return StageResult(
            StageStatus.PASSED,
            f"{candidate.label} is already production with all the traffic; nothing to promote",
            outputs,
        )
    before = ctx.registry.version_by_id(previous).label if previous and previous != candidate.id else "none"
    return StageResult(
        StageStatus.PASSED,
        f"production: {before} -> {candidate.label} at 100%; retired {len(retired)} deployment(s)",
        outputs,
    )
