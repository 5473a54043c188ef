"""Changes run in the background: a change request is checked, then answered 202 with an operation to poll.

Deploy and rollback run Ansible for seconds to minutes, longer than a proxy in front of the API waits for an
answer. So every change (deploy, rollback, undeploy, routes, aliases) is checked while the caller waits
(401/403/404/409/422 come back at once), then handed to a worker thread as an Operation; the answer is
202 with the operation's id and a Location (`GET /api/v1/operations/{id}`) that shows its status, then its
result or its error. The work takes the model's lock as the pipeline does, so an operation and a pipeline
never change a model at the same time.

Operations live in the API process that accepted them: a restart forgets them (in-flight ones finish
first: shutdown waits for them). The API runs as one process; several would need the registry to hold
operations (a table), which it does not yet.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from legion_ci.api.roles import Principal
from legion_ci.core.registry import now

Log = Callable[[str], None]
LOG_LINES = 50  # the last lines an operation logged, kept for its answer
KEEP = 500  # finished operations remembered for polling; the oldest are forgotten first
WORKERS = 4  # operations on different models run side by side; one model's wait for its lock


class OperationStatus(StrEnum):
    QUEUED = "queued"  # accepted, waiting for a worker
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # `result` holds what the change did
    FAILED = "failed"  # `error` holds why, with the HTTP status the request would have had

    @property
    def finished(self) -> bool:
        return self in (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


@dataclass(frozen=True)
class Done:
    """What finished work answers: the result shown to the poller, and what the audit log records."""

    result: dict[str, Any]
    audit: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """A checked change request, ready to run: a handler returns it instead of doing the work itself."""

    action: str  # deploy, rollback, undeploy, routes, alias
    model: str
    audit: dict[str, Any]  # what was asked, recorded when the request is accepted
    work: Callable[[Log], Done]


@dataclass
class Operation:
    id: str
    action: str
    model: str
    method: str
    path: str
    location: str  # where to poll it
    sub: str | None
    role: str
    status: OperationStatus = OperationStatus.QUEUED
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "model": self.model,
            "status": self.status,
            "requested_by": self.sub,
            "method": self.method,
            "path": self.path,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
            "log": list(self.log),
            "location": self.location,
        }


Failure = Callable[[BaseException], tuple[int, dict[str, Any]]]
Finished = Callable[[Operation, int, dict[str, Any]], None]


class Operations:
    """The accepted operations of this process and the worker threads that run them."""

    def __init__(self, base: str, failure: Failure, finished: Finished, workers: int = WORKERS) -> None:
        """`base`: the path operations are polled under; `failure` turns an exception into (HTTP status, error
        body); `finished` is told of every operation that ends (the audit log)."""
        self._base, self._failure, self._finished = base, failure, finished
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="legion-operation")
        self._lock = threading.Lock()
        self._known: OrderedDict[str, Operation] = OrderedDict()

    def create(self, change: Change, principal: Principal, method: str, path: str) -> Operation:
        """A queued operation for `change`, known (pollable) from now on; `start` runs it."""
        op_id = uuid.uuid4().hex
        op = Operation(
            op_id, change.action, change.model, method, path, f"{self._base}/{op_id}", principal.sub, principal.role
        )
        with self._lock:
            self._known[op.id] = op
            self._forget_old()
        return op

    def start(self, op: Operation, change: Change) -> None:
        self._pool.submit(self._run, op, change)

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._known.get(op_id)

    def shutdown(self) -> None:
        """Stop taking work; operations already running finish, queued ones fail as cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for op in self._known.values():
                if op.status is OperationStatus.QUEUED:
                    op.status, op.finished_at = OperationStatus.FAILED, now()
                    op.error = {"error": "the API server stopped before this operation ran", "field": None}

    def _run(self, op: Operation, change: Change) -> None:
        """Run the work; its end is told to `finished` (the audit log) before a poller can see it."""
        op.status, op.started_at = OperationStatus.RUNNING, now()
        try:
            done = change.work(op.log.append)
        except BaseException as exc:  # every failure becomes the operation's error, never a dead thread
            status, body = self._failure(exc)
            op.error, op.finished_at = {**body, "status": status}, now()
            self._finished(op, status, change.audit)
            op.status = OperationStatus.FAILED
            return
        op.result, op.finished_at = done.result, now()
        self._finished(op, 200, done.audit)
        op.status = OperationStatus.SUCCEEDED

    def _forget_old(self) -> None:
        finished = [k for k, op in self._known.items() if op.status.finished]
        for key in finished[: max(0, len(finished) - KEEP)]:
            del self._known[key]
