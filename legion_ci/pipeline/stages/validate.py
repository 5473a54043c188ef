"""Stage validate: the spec, the files it names, and what later stages need of them (legion_ci.core.preflight)."""

from __future__ import annotations

from legion_ci.core.preflight import check_ready
from legion_ci.core.status import StageStatus
from legion_ci.pipeline.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec  # load_spec raises SpecError naming every bad field
    check_ready(ctx.loaded)  # and what later stages would trip over, known without training
    return StageResult(
        StageStatus.PASSED, f"{spec.name} {spec.version}: spec valid", {"name": spec.name, "version": spec.version}
    )
