"""Stage smoke: every replica of the candidate answers the example rows as the artifact does."""

from __future__ import annotations

from legion_ci.errors import StageFailed
from legion_ci.smoke import auth_headers, check_endpoint
from legion_ci.stages.base import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    art = ctx.candidate_artifact
    deployed = ctx.output("deploy")
    headers = auth_headers(ctx.settings, art, ctx.loaded.spec.deploy.auth)
    problems = [p for url in deployed["urls"] for p in check_endpoint(url, art, headers)]
    if problems:
        raise StageFailed("smoke", "; ".join(problems))
    rows = len(art.schema["example"])
    return StageResult("passed", f"{rows} example rows answered as the artifact predicts on "
                                 f"{len(deployed['urls'])} replica(s)", {"rows": rows})
