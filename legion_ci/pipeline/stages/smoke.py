"""Stage smoke: every replica of the candidate answers the example rows as the artifact does, and so does
the router. A failed smoke test rolls the candidate back (production keeps serving) before failing."""

from __future__ import annotations

from legion_ci.core.errors import StageFailed
from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout
from legion_ci.pipeline.stages.base import StageContext, StageResult
from legion_ci.quality.smoke import auth_headers, check_endpoint, check_router


def run(ctx: StageContext) -> StageResult:
    art = ctx.candidate_artifact
    deployed = ctx.output("deploy")
    headers = auth_headers(ctx.settings, art, ctx.loaded.spec.deploy.auth)
    problems = [p for url in deployed["urls"] for p in check_endpoint(url, art, headers)]
    router = deployed.get("router_url")
    if router and not problems:
        ctx.log(f"through the router {router}")
        weight = deployed.get("weight")
        problems = check_router(router, art, headers, 100 if weight is None else int(weight))
    if problems:
        ctx.log(f"smoke test failed: rolling back {ctx.candidate.label}")
        done = rollout.rollback(
            ctx.settings, ctx.registry, ctx.candidate, ctx.loaded.spec, None, ctx.stage_dir(), ctx.log
        )
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise StageFailed("smoke", f"{'; '.join(problems[:3])}{more}; {done}", {"problems": problems})
    rows = len(art.schema.example)
    via = " and through the router" if router else ""
    return StageResult(
        StageStatus.PASSED,
        f"{rows} example rows answered as the artifact predicts on {len(deployed['urls'])} replica(s){via}",
        {"rows": rows},
    )
