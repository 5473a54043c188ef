"""Stage evaluate (the `<model>-rollout` job, hourly): join each variant's captured predictions with their
ground truth (this host's capture segments and those shipped to the store), decide by the rollout's
sequential test (legion_ci.rollout) and act through the deploy core: advance the candidate a canary step,
promote it, roll it back, or keep testing. Each decision is a registry event with its evidence, and an A/B
report (HTML, JSON, JUnit: a rollback is a failed test case)."""

from __future__ import annotations

import time

from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout as deploy
from legion_ci.feedback.ship import all_segments
from legion_ci.pipeline.stages.base import StageContext, StageResult, keeps_outputs
from legion_ci.reports.ab_report import write_ab_reports
from legion_ci.rollout.decision import Action, Policy, decide, resolve_metric
from legion_ci.rollout.evaluation import EVENT_KIND, find_pair, gather, summary


@keeps_outputs
def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec
    pair, why = find_pair(ctx.registry, spec.name)
    if pair is None:
        return StageResult(StageStatus.PASSED, why, {"action": None})
    if spec.rollout.strategy == "shadow" and ctx.settings.gateway_release:
        ctx.log(
            "warning: a shadow rollout through the Gateway joins feedback only for callers that send X-Request-ID "
            "(a mirrored copy without one gets its own id; docs/traffic.md)"
        )
    task = pair.candidate_version.manifest.task
    metric = resolve_metric(spec.rollout, spec.gate.compare_to_production.metric, task)
    policy = Policy.of(spec.rollout, metric)
    candidate, production, scores = gather(all_segments(ctx.settings, spec.name), pair, metric)
    elapsed = time.time() - pair.since
    decision = decide(policy, candidate, production, elapsed)
    ctx.log(
        f"{pair.candidate_version.label} at {candidate.weight}% vs {pair.production_version.label}: {decision.action}"
    )
    ctx.log(decision.reason)
    folder = ctx.stage_dir()
    done = ""
    if decision.action is Action.ADVANCE and decision.weight_to is not None:
        deploy.reweight(ctx.settings, ctx.registry, pair.candidate, decision.weight_to, folder, ctx.log)
        done = f"advanced to {decision.weight_to}%"
    elif decision.action is Action.PROMOTE:
        _, retired, _ = deploy.promote(ctx.settings, ctx.registry, pair.candidate_version, folder, ctx.log)
        done = f"promoted: production is {pair.candidate_version.label}; retired {len(retired)} deployment(s)"
    elif decision.action is Action.ROLLBACK:
        done = deploy.rollback(ctx.settings, ctx.registry, pair.candidate_version, spec, None, folder, ctx.log)
    data = summary(policy, pair, candidate, production, scores, decision, elapsed, ctx.run.id)
    data["done"] = done
    history = ctx.registry.events(spec.name, EVENT_KIND, version_id=pair.candidate_version.id)
    event = ctx.registry.add_event(
        spec.name,
        EVENT_KIND,
        str(decision.action),
        f"{decision.reason}" + (f"; {done}" if done else ""),
        data,
        pair.candidate_version.id,
        ctx.run.id,
    )
    files = write_ab_reports(folder, data, [e.detail for e in history] + [data])
    said = f"{decision.action}: {decision.reason}" + (f"; {done}" if done else "")
    return StageResult(
        StageStatus.PASSED,
        said,
        {
            "action": str(decision.action),
            "event_id": event.id,
            "candidate": pair.candidate_version.label,
            "weight_from": decision.weight_from,
            "weight_to": decision.weight_to,
            "reports": [str(f) for f in files],
        },
    )
