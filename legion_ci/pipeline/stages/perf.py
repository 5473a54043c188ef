"""Stage perf: the candidate's own server under Locust load, judged against the spec's SLA.

The server is started here on a free port (capture off: synthetic load is not feedback) and stopped
here, whatever happens; production's deployment is never touched."""

from __future__ import annotations

import time
from typing import Any

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import LegionError, StageFailed
from legion_ci.core.processes import start_server, stop_pid
from legion_ci.core.settings import Settings, child_env
from legion_ci.core.status import StageStatus
from legion_ci.pipeline.stages.base import StageContext, StageResult, keeps_outputs
from legion_ci.quality.checks import Check
from legion_ci.quality.perf import locustfile
from legion_ci.quality.perf.results import read_failures, read_history, read_samples, read_stats, with_sampled_rate
from legion_ci.quality.perf.runner import run_locust
from legion_ci.quality.perf.sla import sla_checks
from legion_ci.reports.model import ReportHead, ReportStatus, Stopwatch, headline
from legion_ci.reports.perf_report import PerfEvidence, write_perf_reports

TITLE = "Performance test"


def token_env(settings: Settings, art: Artifact, auth: bool, seconds: int) -> dict[str, str]:
    """A bearer token for the load, in the environment only (never argv, never a file), when auth is on."""
    if not auth:
        return {}
    from legion_ci.auth.tokens import mint_model_token

    token = mint_model_token(settings, art.name, art.version, min(seconds, settings.jwt_max_ttl))
    return {locustfile.ENV_TOKEN: token}


@keeps_outputs
def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec
    perf = spec.perf
    art = ctx.candidate_artifact
    folder = ctx.stage_dir()
    clock = time.monotonic()
    settings_line = f"{perf.users} users, spawn rate {perf.spawn_rate:g}/s, {perf.duration}s"

    def head(status: ReportStatus, line: str) -> ReportHead:
        return ReportHead(
            "perf",
            TITLE,
            art.name,
            art.version,
            art.id,
            ctx.run.id,
            status,
            line,
            None,
            time.monotonic() - clock,
        )

    skip = (
        f"skipped by request: {ctx.options.skip_perf_reason}"
        if ctx.options.skip_perf_reason
        else "skipped: perf.enabled is false in legion.yaml"
        if not perf.enabled
        else None
    )
    if skip:
        reports = write_perf_reports(folder, head(ReportStatus.SKIPPED, skip), [], None, perf.sla, {"reason": skip})
        ctx.log(skip)
        return StageResult(StageStatus.SKIPPED, skip, {"skipped": True, "reason": skip, "reports": reports})

    evidence = PerfEvidence(users=perf.users, spawn_rate=perf.spawn_rate, duration=perf.duration, auth=spec.deploy.auth)
    checks: list[Check] = []
    watch = Stopwatch()
    evidence.timings = watch.phases
    try:
        lf, evidence.locustfile_source = locustfile.choose(ctx.model_dir, art, folder)
        evidence.locustfile = str(lf)
        server_args = (["--no-auth"] if not spec.deploy.auth else []) + ["--no-capture"]
        env = child_env(ctx.settings)
        watch.lap("locustfile")
        endpoint = start_server(str(art.path), folder / "server.log", env, server_args)
        evidence.url, evidence.pid = endpoint["url"], int(endpoint["pid"])
        watch.lap("server start")
        ctx.log(
            f"candidate serving on {endpoint['url']} (pid {endpoint['pid']}, capture off, "
            f"auth {'on' if spec.deploy.auth else 'off'}); Locust: {settings_line}, {evidence.locustfile_source} "
            f"locustfile {lf}"
        )
        try:
            load_env = {
                locustfile.ENV_INVOKE_PATH: locustfile.invoke_path(art),
                locustfile.ENV_EXAMPLES: _examples(art),
                **token_env(ctx.settings, art, spec.deploy.auth, perf.duration + 600),
            }
            locust = run_locust(lf, endpoint["url"], perf.users, perf.spawn_rate, perf.duration, folder, load_env)
            watch.lap("locust")
        finally:
            stop_pid(int(endpoint["pid"]))
            watch.lap("server stop")
        evidence.total, evidence.requests = read_stats(locust.stats_csv)
        samples = read_samples(locust.samples_csv)  # half-second bins: the plots and the throughput agree
        evidence.history = samples or read_history(locust.history_csv)
        evidence.total = with_sampled_rate(evidence.total, samples)
        evidence.failures = read_failures(locust.failures_csv)
        checks = sla_checks(perf.sla, evidence.total, perf.duration)
    except LegionError as exc:
        write_perf_reports(
            folder,
            head(ReportStatus.ERROR, exc.message),
            checks,
            evidence,
            perf.sla,
            {"timings": watch.phases},
            error=exc.message,
        )
        raise

    for check in checks:
        ctx.log(f"{check.verdict.upper():7} {check.name}: {check.message}")
    failed = [c for c in checks if not c.passed]
    reason = headline(checks, "SLA bounds")
    reports = write_perf_reports(
        folder,
        head(ReportStatus.FAILED if failed else ReportStatus.PASSED, reason),
        checks,
        evidence,
        perf.sla,
        {"timings": watch.phases},
    )
    watch.lap("reports")
    ctx.log(f"time: {watch.line()}")
    total = evidence.total
    outputs: dict[str, Any] = {
        "reports": reports,
        "requests": total.requests,
        "failures": total.failures,
        "p95_ms": total.p95_ms,
        "p99_ms": total.p99_ms,
        "rps": round(total.rps, 2),
        "failed": [c.as_dict() for c in failed],
    }
    if failed:
        raise StageFailed("perf", reason, {"checks": [c.as_dict() for c in checks], "reports": reports})
    return StageResult(
        StageStatus.PASSED,
        f"{reason}: p95 {total.p95_ms:g} ms, p99 {total.p99_ms:g} ms, "
        f"{total.rps:.0f} req/s, {total.failures} errors ({settings_line})",
        outputs,
    )


def _examples(art: Artifact) -> str:
    import json

    return json.dumps(art.schema.example)
