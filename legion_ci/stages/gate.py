"""Stage gate: nothing is deployed that misses a threshold or regresses against production."""

from __future__ import annotations

from legion_ci.artifact import Artifact, write_json_atomic
from legion_ci.errors import StageFailed
from legion_ci.gate import comparison_check, threshold_checks
from legion_ci.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec
    candidate = ctx.candidate_artifact
    production_record = ctx.registry.alias(spec.name, "production")
    production = Artifact.open(production_record.path) if production_record else None
    checks = threshold_checks(spec.gate, candidate.metrics)
    comparison, _ = comparison_check(spec.gate, candidate, production, require_improvement=ctx.run.flow == "retrain")
    checks.append(comparison)
    failed = [c for c in checks if not c.passed]
    write_json_atomic(ctx.stage_dir() / "summary.json",
                      {"passed": not failed, "checks": [c.as_dict() for c in checks], "candidate": candidate.id})
    for check in checks:
        ctx.log(f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.message}")
    if failed:
        raise StageFailed("gate", "; ".join(c.message for c in failed),
                          {"checks": [c.as_dict() for c in checks]})
    return StageResult("passed", f"{len(checks)} checks passed", {"checks": len(checks)})
