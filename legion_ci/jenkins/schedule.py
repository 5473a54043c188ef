"""`legion-ci schedule`: when Jenkins will run a model's retrain job, using Jenkins' hash for `H`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from legion_ci.core import cron
from legion_ci.core.errors import ConfigError
from legion_ci.core.spec import LoadedSpec
from legion_ci.jenkins import jobs


@dataclass(frozen=True)
class Schedule:
    job: str  # the job's full name: the seed of H
    expression: str
    times: list[datetime]
    timezone: str | None  # from a TZ= line, else the zone asked for


def next_runs(loaded: LoadedSpec, after: datetime, count: int = 5, tz: tzinfo | None = None) -> Schedule:
    spec = loaded.spec
    if not spec.schedule.retrain:
        raise ConfigError(
            f"{loaded.file}: schedule.retrain is not set, so there is no retrain job to schedule "
            "(expected a Jenkins cron expression such as 'H H(0-5) * * 1-5')"
        )
    kind = jobs.job_kind("retrain")
    job = jobs.full_name(spec.name, kind)
    try:
        tabs = cron.parse(spec.schedule.retrain, job_name=job)
    except cron.CronSyntaxError as exc:
        raise ConfigError(f"{loaded.file}: schedule.retrain: {exc}") from None
    times = tabs.next_times(after, count, tz=tz)
    zone = tabs.timezone or (str(tz) if tz is not None else None)
    return Schedule(job, spec.schedule.retrain, times, zone)
