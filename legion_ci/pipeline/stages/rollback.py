"""Rollback: take a run's candidate out of service, production keeping (or getting back) the traffic.

Not a stage of any flow (graph.ROLLBACK, run on demand): a failed smoke test rolls back by itself, and
Jenkins (or a person, or the management API) runs `legion-ci rollback --run-id ID` when a later step
fails. The runner records it beside the run's stages under the model's lock, as it does every stage.
After a promote it puts the version the candidate replaced back into production first.
"""

from __future__ import annotations

from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout
from legion_ci.pipeline.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    candidate = ctx.candidate
    promoted = ctx.registry.stages(ctx.run.id).get("promote")
    previous = (
        (promoted.outputs or {}).get("previous_version_id")
        if promoted and promoted.status is StageStatus.PASSED
        else None
    )
    done = rollout.rollback(ctx.settings, ctx.registry, candidate, ctx.loaded.spec, previous, ctx.stage_dir(), ctx.log)
    return StageResult(StageStatus.PASSED, done, {"version_id": candidate.id})
