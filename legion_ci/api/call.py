"""What a handler receives: the verified caller, the path and query parameters, the JSON body, the state
(and the background operations, which `GET /operations/{id}` reads)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from legion_ci.api.errors import ApiError
from legion_ci.api.roles import Principal
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings

if TYPE_CHECKING:
    from legion_ci.api.operations import Operations

# Seconds an operation waits for its model's lock (a pipeline run holds it for minutes) before it fails
# with status 409. It waits in the background: the request was answered 202 already.
LOCK_WAIT = 60.0


@dataclass(frozen=True)
class Call:
    settings: Settings
    registry: Registry
    principal: Principal
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: dict[str, Any]
    operations: Operations | None = None

    @property
    def model(self) -> str:
        return self.params["name"]

    def known_model(self) -> str:
        """The path's model; 404 when the registry has no version of it."""
        if not self.registry.versions(self.model):
            raise ApiError(404, f"no model {self.model!r} in the registry", "name")
        return self.model

    @contextmanager
    def locked(self, model: str) -> Iterator[None]:
        """Hold the model's lock (the one pipelines take) for one change; LockedError (409) when a run holds it
        longer than LOCK_WAIT."""
        owner = f"api:{self.principal.sub or 'anonymous'}:{uuid.uuid4().hex[:8]}"
        with model_lock(self.registry, model, owner=owner, wait=LOCK_WAIT):
            yield
