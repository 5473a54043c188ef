"""The API's errors and the HTTP status of every LegionError a handler can raise."""

from __future__ import annotations

from legion_ci.auth.jwt import AuthError
from legion_ci.core.errors import (
    LegionError,
    LockedError,
    NeedsUnmet,
    NotFoundError,
    RegistryError,
    SpecError,
    StageFailed,
)


class ApiError(LegionError):
    """A request the API refuses: its HTTP status, a message, and the field at fault (when one is)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def invalid(message: str, field: str | None = None) -> ApiError:
    """422: well-formed JSON whose content is wrong."""
    return ApiError(422, message, field)


def conflict(message: str) -> ApiError:
    """409: the request is fine, the state of the model or run does not allow it now."""
    return ApiError(409, message)


# A run's legion.yaml is not the caller's input: 409 says "fix the run's state first". Deploy failures and a
# broken environment are the server's (500), never blamed on the caller.
STATUS: tuple[tuple[type[LegionError], int], ...] = (
    (NotFoundError, 404),
    (LockedError, 409),
    (NeedsUnmet, 409),
    (StageFailed, 409),
    (SpecError, 409),
    (RegistryError, 503),
)


def status_of(exc: LegionError) -> int:
    """The HTTP status for an error: its own for ApiError/AuthError, else by class (500 when none fits)."""
    if isinstance(exc, (ApiError, AuthError)):
        return exc.status
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500
