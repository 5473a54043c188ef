"""What a handler receives: the verified caller, the path and query parameters, the JSON body, the state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from legion_ci.api.errors import ApiError
from legion_ci.api.roles import Principal
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings

LOCK_WAIT = 5.0  # seconds a change waits for a model's lock before answering 409


@dataclass(frozen=True)
class Call:
    settings: Settings
    registry: Registry
    principal: Principal
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: dict[str, Any]

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
        """Hold the model's lock (the one pipelines take) for one change; 409 when a run holds it."""
        owner = f"api:{self.principal.sub or 'anonymous'}:{uuid.uuid4().hex[:8]}"
        with model_lock(self.registry, model, owner=owner, wait=LOCK_WAIT):
            yield
