"""One request's way through the API: authenticate, check role and model scope, read the body, run the
handler off the event loop, answer JSON, and record every mutating call in the audit log. A change that
passed its checks is handed to the background operations and answered 202 (see operations.py); the
audit log records it when it is accepted and again when it ends."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from legion_ci.api.audit import AuditLog, outcome
from legion_ci.api.authn import ManagementAuth
from legion_ci.api.call import Call
from legion_ci.api.endpoints import PREFIX, Endpoint
from legion_ci.api.errors import status_of
from legion_ci.api.jsonio import Reply, error_body, read_object, response
from legion_ci.api.operations import Change, Operation, Operations
from legion_ci.api.roles import Principal
from legion_ci.core.errors import LegionError
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings

log = logging.getLogger(__name__)
READS = ("GET", "HEAD", "OPTIONS")


def failure(exc: BaseException) -> Reply:
    """The JSON error answer for an exception; unexpected ones are logged with their traceback."""
    if isinstance(exc, LegionError):
        status = status_of(exc)
        reply = Reply(status, error_body(exc.message, getattr(exc, "field", None)))
        if status == 401:
            reply.headers["www-authenticate"] = 'Bearer realm="legion-ci-management"'
        if status >= 500:
            log.error("%s", exc.message)
        return reply
    log.exception("unexpected error", exc_info=exc)
    return Reply(500, error_body(f"internal error: {type(exc).__name__} (details in the API server's log)"))


def _failure_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    reply = failure(exc)
    return reply.status, reply.body


class Dispatcher:
    def __init__(self, settings: Settings, registry: Registry, auth: ManagementAuth, audit: AuditLog) -> None:
        self.settings, self.registry, self.auth, self.audit = settings, registry, auth, audit
        self.operations = Operations(f"{PREFIX}/operations", _failure_body, self.record_finished)

    def route(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await self.handle(endpoint, request)

        handle.__name__ = endpoint.name
        return handle

    async def handle(self, endpoint: Endpoint, request: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = await self.auth.principal(request.headers.get("authorization"))
            principal.require(endpoint.permission, request.method, request.url.path)
            if "name" in request.path_params:
                principal.require_model(str(request.path_params["name"]))
            body: dict[str, Any] = {}
            if endpoint.body != "none":
                body = await read_object(request, required=endpoint.body == "required")
            call = Call(
                self.settings,
                self.registry,
                principal,
                dict(request.path_params),
                dict(request.query_params),
                body,
                self.operations,
            )
            answer = await run_in_threadpool(endpoint.handler, call)
            if isinstance(answer, Change):
                return self.accept(answer, principal, request)
            reply = answer
        except Exception as exc:
            reply = failure(exc)
        self.record(request, principal, reply)
        return response(reply)

    def accept(self, change: Change, principal: Principal, request: Request) -> Response:
        """202 with the queued operation that will run the change, and where to poll it; audited before the
        work starts, so the log shows the acceptance before the end."""
        op = self.operations.create(change, principal, request.method, request.url.path)
        reply = Reply(202, op.view(), {**change.audit, "operation": op.id})
        reply.headers.update({"location": op.location, "retry-after": "1"})
        self.record(request, principal, reply)
        self.operations.start(op, change)
        return response(reply)

    def record_finished(self, op: Operation, status: int, change: dict[str, Any]) -> None:
        """Audit the end of an operation: its status is the one the request would have had, had it waited."""
        entry: dict[str, Any] = {
            "sub": op.sub,
            "role": op.role,
            "method": op.method,
            "path": op.path,
            "status": status,
            "outcome": outcome(status),
            "operation": op.id,
        }
        if op.error:
            entry["reason"] = op.error.get("error")
        entry["change"] = change
        self.audit.record(entry)

    def record(self, request: Request, principal: Principal | None, reply: Reply) -> None:
        """Audit a mutating call: who, what, the outcome, what changed; never the token."""
        if request.method in READS:
            return
        entry: dict[str, Any] = {
            "sub": principal.sub if principal else None,
            "role": principal.role if principal else None,
            "method": request.method,
            "path": request.url.path,
            "status": reply.status,
            "outcome": outcome(reply.status),
            "client": request.client.host if request.client else None,
        }
        if request.url.query:
            entry["query"] = request.url.query
        if reply.status >= 400 and isinstance(reply.body, dict):
            entry["reason"] = reply.body.get("error")
        if reply.audit:
            entry["change"] = reply.audit
        self.audit.record(entry)
