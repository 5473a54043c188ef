"""The states the registry records: a stage's, a run's, a deployment's. StrEnums, so the registry stores
and reads the same strings it always did (an existing registry reads the same) while the code compares
members, never spelled-out strings."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

S = TypeVar("S", bound=StrEnum)


class StageStatus(StrEnum):
    """One stage of one run. PENDING is shown for a stage not started yet; it is never stored."""

    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    SKIPPED = "skipped"  # not needed (an earlier stage halted the flow) or skipped on purpose (perf)
    HALTED = "halted"  # ran and ended the flow on purpose, not an error (a retrain no better than production)
    FAILED = "failed"  # the stage ran and its check said no (gate, perf, smoke)
    ERROR = "error"  # the stage could not run (bad input, a tool failed, a bug)

    @property
    def satisfied(self) -> bool:
        """Whether a later stage that needs this one may go on."""
        return self in (StageStatus.PASSED, StageStatus.SKIPPED, StageStatus.HALTED)

    @property
    def finished(self) -> bool:
        return self not in (StageStatus.PENDING, StageStatus.RUNNING)


class RunStatus(StrEnum):
    """A whole run: running until its flow ends (or until a stage run alone fails)."""

    RUNNING = "running"
    PASSED = "passed"
    HALTED = "halted"  # a stage ended the flow on purpose (nothing to deploy): not a failure, exit 0
    FAILED = "failed"
    ERROR = "error"


class DeploymentStatus(StrEnum):
    """One deployment of one version; only STARTING and SERVING ones take traffic."""

    STARTING = "starting"
    SERVING = "serving"
    STOPPED = "stopped"
    ROLLED_BACK = "rolled-back"

    @property
    def active(self) -> bool:
        return self in ACTIVE_DEPLOYMENT


ACTIVE_DEPLOYMENT: tuple[DeploymentStatus, ...] = (DeploymentStatus.STARTING, DeploymentStatus.SERVING)
RETIRED_DEPLOYMENT: tuple[DeploymentStatus, ...] = (DeploymentStatus.STOPPED, DeploymentStatus.ROLLED_BACK)


def stored(kind: type[S], value: str) -> S:
    """A status read from the registry, as a member. A word this version does not know (written by hand, by
    a newer legion-ci, or by a tool) reads as itself instead of failing the whole read: a member outside the
    enum's list, equal to its stored string, neither active, satisfied nor running. Writes stay strict:
    `kind(value)` refuses an unknown word."""
    try:
        return kind(value)
    except ValueError:
        member = str.__new__(kind, value)
        member._name_, member._value_ = value.upper().replace("-", "_"), value
        return member
