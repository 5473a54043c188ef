"""What every report states first: which stage, for which candidate, with what verdict and why."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from legion_ci.quality.checks import Check


class ReportStatus(StrEnum):
    """A report's verdict: a stage's status, plus what the gate adds (forced past a failure, halted)."""

    PASSED = "passed"
    FAILED = "failed"
    FORCED = "forced"
    HALTED = "halted"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass(frozen=True)
class ReportHead:
    """The verdict of one stage run and the candidate it is about."""

    stage: str  # "gate" or "perf"
    title: str
    model: str
    version: str
    artifact_id: str
    run_id: str
    status: ReportStatus
    headline: str  # the reason, first: why it failed, or what passed
    forced_reason: str | None = None
    seconds: float | None = None
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ReportStatus(self.status))  # "passed" or a member: a member

    @property
    def label(self) -> str:
        return f"{self.model} {self.version} ({self.artifact_id[:8]})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def headline(checks: list[Check], what: str) -> str:
    """The reason first: the failed checks' messages, or how many checks passed."""
    failed = [c for c in checks if not c.passed]
    if failed:
        more = f" (and {len(failed) - 1} more failed check{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
        return failed[0].message + more
    ran = [c for c in checks if not c.skipped]
    skipped = len(checks) - len(ran)
    return f"all {len(ran)} {what} passed" + (f", {skipped} skipped" if skipped else "")


def counts(checks: list[Check]) -> dict[str, int]:
    return {
        "total": len(checks),
        "passed": sum(c.passed and not c.skipped for c in checks),
        "failed": sum(not c.passed for c in checks),
        "skipped": sum(c.skipped for c in checks),  # JUnit's count: halted checks are skipped testcases
        "halted": sum(c.verdict == "halted" for c in checks),
    }


class Stopwatch:
    """Seconds spent in each phase of a stage: for the log, the summary and the report."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, phase: str) -> float:
        now = time.monotonic()
        self.phases[phase] = round(now - self._last, 3)
        self._last = now
        return self.phases[phase]

    def line(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.phases.items())
