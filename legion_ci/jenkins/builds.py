"""`legion-ci jenkins build` and `status`: start a build, follow it to the end, show the last builds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from legion_ci.core.errors import EXIT_FAILED, ConfigError, LegionError
from legion_ci.jenkins import jobs
from legion_ci.jenkins.client import JenkinsClient


class BuildFailed(LegionError):
    """The Jenkins build finished with a result other than SUCCESS."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class BuildResult:
    job: str
    number: int
    result: str
    url: str


def job_for(model: str, suffix: str) -> str:
    try:
        kind = jobs.job_kind(suffix)
    except KeyError:
        valid = ", ".join(k.suffix for k in jobs.JOB_KINDS)
        raise ConfigError(f"--job {suffix!r} is not a job kind (expected one of {valid})") from None
    return jobs.full_name(model, kind)


def parse_params(pairs: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    """`K=V` pairs; K must be one of the job's parameters."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r} is not KEY=VALUE (expected e.g. LEGION_TRAFFIC_WEIGHT=10)")
        if key not in allowed:
            raise ConfigError(f"--param {key!r} is not a parameter of this job (expected one of {', '.join(allowed)})")
        params[key] = value
    return params


def follow(
    client: JenkinsClient,
    job: str,
    params: dict[str, str],
    out: Callable[[str], None],
    poll: float = 2.0,
    timeout: float = 4 * 3600,
) -> BuildResult:
    """Queue a build of `job`, wait for it to start, stream its console, and return how it ended."""
    queue_id = client.build(job, params)
    out(f"queued {job} (queue item {queue_id})")
    deadline = time.monotonic() + timeout
    number: int | None = None
    while number is None:
        item = client.queue_item(queue_id)
        if item.get("cancelled"):
            raise BuildFailed(f"{job}: the queued build was cancelled in Jenkins")
        executable = item.get("executable") or {}
        if executable.get("number") is not None:
            number = int(executable["number"])
            break
        _wait(deadline, poll, f"{job}: still queued ({item.get('why') or 'waiting'})")
    out(f"started {job} #{number}")
    shown = 0
    while True:
        info = client.build_info(job, number)
        text = client.console(job, number)
        if len(text) > shown:
            out(text[shown:].rstrip("\n"))
            shown = len(text)
        if not info.get("building") and info.get("result") is not None:
            result = BuildResult(job, number, str(info["result"]), str(info.get("url", "")))
            break
        _wait(deadline, poll, f"{job} #{number}: still running")
    out(f"{job} #{number}: {result.result} {result.url}")
    if result.result != "SUCCESS":
        raise BuildFailed(f"{job} #{number} finished {result.result}: see {result.url}console")
    return result


def _wait(deadline: float, poll: float, what: str) -> None:
    if time.monotonic() + poll > deadline:
        raise BuildFailed(f"gave up waiting: {what}")
    time.sleep(poll)


def last_builds(client: JenkinsClient, job: str, count: int = 5) -> list[dict[str, Any]]:
    """The newest `count` builds of `job`: number, result, start time, duration, URL."""
    info = client.job_info(job)
    rows = []
    for entry in (info.get("builds") or [])[:count]:
        b = client.build_info(job, int(entry["number"]))
        started = datetime.fromtimestamp(b.get("timestamp", 0) / 1000, tz=UTC)
        rows.append(
            {
                "number": b.get("number"),
                "result": "RUNNING" if b.get("building") else (b.get("result") or "?"),
                "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "duration_s": round((b.get("duration") or 0) / 1000, 1),
                "url": b.get("url", ""),
            }
        )
    return rows
