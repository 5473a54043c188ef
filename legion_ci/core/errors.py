"""User-facing errors. Each carries a message a person can act on and the exit code the CLI uses."""

from __future__ import annotations

from typing import Any

EXIT_FAILED = 1  # a check said no: gate, perf SLA, smoke test
EXIT_ERROR = 2  # bad input or a broken environment


def preview(value: Any, limit: int = 60) -> str:
    """A short repr of a caller's value for an error message: nesting depth, length and size capped, so
    quoting a hostile value (a 20 MB string, an array nested 1,000 deep) costs nothing and cannot fail."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 3, limit, limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 6
    text = shortener.repr(value)
    return text if len(text) <= limit + 12 else text[:limit] + "..."


class LegionError(Exception):
    """Base of every error legion-ci reports to a user; never shown with a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(LegionError):
    """legion.yaml is missing, unreadable or invalid."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{file}: invalid model spec\n{lines}")


class ConfigError(LegionError):
    """A setting from the environment or command line is wrong."""


class SettingsError(ConfigError):
    """A LEGION_* variable (or the flag that overrides it) has a value legion-ci cannot use."""

    def __init__(self, variable: str, value: str, expected: str, others: list[SettingsError] | None = None) -> None:
        lines = [f"{variable}={value!r} is not valid (expected {expected})", *(str(o) for o in others or [])]
        super().__init__("\n".join(lines))
        self.variable = variable
        self.value = value
        self.expected = expected
        self.others = others or []  # further bad settings found in the same reading


class NotFoundError(LegionError):
    """A model, version, run or artifact that was asked for does not exist."""


class RegistryError(LegionError):
    """The registry database could not be reached or answered with an error."""


class ArtifactError(LegionError):
    """An artifact is missing, incomplete or fails its integrity check."""


class StageFailed(LegionError):
    """A stage ran and its check said no (gate, perf, smoke)."""

    exit_code = EXIT_FAILED

    def __init__(self, stage: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{stage} failed: {message}")
        self.stage = stage
        self.details = details or {}


class StageError(LegionError):
    """A stage could not do its work (as opposed to its check failing)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class NeedsUnmet(StageError):
    """A stage was asked to run before the stages it needs passed in its run, or against a run that does
    not exist; nothing was recorded."""


class DeployError(LegionError):
    """A deployment could not be started, checked or stopped."""


class LockedError(LegionError):
    """Another pipeline holds the model's lock."""

    exit_code = 3


class ExternalToolError(LegionError):
    """An external tool (ansible, docker, helm, jenkins) failed; carries the command and its status."""

    def __init__(self, tool: str, command: str, status: int | str, output: str = "") -> None:
        tail = "\n".join(output.strip().splitlines()[-20:])
        msg = f"{tool} failed (status {status}): {command}"
        super().__init__(msg + (f"\n{tail}" if tail else ""))
        self.tool = tool
        self.command = command
        self.status = status
