"""Rollback: take a run's candidate out of service, production keeping (or getting back) the traffic.

Not a stage of any flow: a failed smoke test runs it itself, and Jenkins (or a person) runs
`legion-ci rollback --run-id ID` when a later step fails. After a promote it puts the version the
candidate replaced back into production first.
"""

from __future__ import annotations

import time

from legion_ci.core.errors import LegionError
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry, RunRecord, now
from legion_ci.core.settings import Settings
from legion_ci.deploy import rollout
from legion_ci.pipeline.stages.base import RunOptions, StageContext, StageResult

NAME = "rollback"


def run(ctx: StageContext) -> StageResult:
    candidate = ctx.candidate
    promoted = ctx.registry.stages(ctx.run.id).get("promote")
    previous = (promoted.outputs or {}).get("previous_version_id") if promoted and promoted.status == "passed" else None
    done = rollout.rollback(ctx.settings, ctx.registry, candidate, ctx.loaded.spec, previous, ctx.stage_dir(), ctx.log)
    return StageResult("passed", done, {"version_id": candidate.id})


def run_recorded(
    settings: Settings, registry: Registry, record: RunRecord, options: RunOptions, log: rollout.Log
) -> StageResult:
    """Run the rollback of a run under the model's lock, recording it beside the run's stages."""
    started, clock = now(), time.monotonic()
    registry.record_stage(record.id, NAME, "running", started_at=started)
    ctx = StageContext(settings, registry, record, NAME, options, log)
    try:
        with model_lock(registry, record.model, owner=record.id, wait=options.lock_wait):
            result = run(ctx)
    except LegionError as exc:
        registry.record_stage(record.id, NAME, "error", exc.message, {}, started, time.monotonic() - clock)
        raise
    registry.record_stage(
        record.id, NAME, result.status, result.summary, result.outputs, started, time.monotonic() - clock
    )
    return result
