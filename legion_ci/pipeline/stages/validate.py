"""Stage validate: the spec and the files it names."""

from __future__ import annotations

from legion_ci.core.status import StageStatus
from legion_ci.pipeline.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec  # load_spec raises SpecError naming every bad field
    return StageResult(
        StageStatus.PASSED, f"{spec.name} {spec.version}: spec valid", {"name": spec.name, "version": spec.version}
    )
