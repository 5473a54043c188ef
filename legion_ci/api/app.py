"""The management API's ASGI app: the endpoint table's routes under /api/v1, health and OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion_ci.api.audit import FILE, AuditLog
from legion_ci.api.authn import ManagementAuth, auth_config
from legion_ci.api.dispatch import Dispatcher
from legion_ci.api.endpoints import ENDPOINTS, PREFIX
from legion_ci.api.jsonio import Reply, error_body, response
from legion_ci.api.openapi import build_openapi
from legion_ci.core.errors import LegionError
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings


def create_app(settings: Settings) -> Starlette:
    """The API for the registry and LEGION_HOME of `settings`; token settings come from the environment
    (LEGION_JWT_SECRET[_FILE], LEGION_JWKS, LEGION_JWT_ISSUER, LEGION_JWT_MAX_TTL, LEGION_JWT_REVOKED,
    LEGION_API_AUDIENCE)."""
    auth = ManagementAuth(auth_config(settings))
    audit = AuditLog(settings.home / FILE)
    registry = Registry.from_settings(settings)
    dispatcher = Dispatcher(settings, registry, auth, audit)
    openapi = response(Reply(200, build_openapi(auth.audience)))

    async def ready(request: Request) -> Response:
        try:
            await run_in_threadpool(registry.model_names)
        except LegionError as exc:
            return response(Reply(503, error_body(f"registry unavailable: {exc.message}")))
        if not audit.writable():
            return response(Reply(503, error_body(f"audit log {audit.path} is not writable")))
        return response(Reply(200, {"status": "ready"}))

    async def spec(request: Request) -> Response:
        return openapi

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown paths (404) and methods (405) answer JSON too; mutating ones are audited."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {
            404: f"no endpoint {request.url.path} (see {PREFIX}/openapi.json)",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(status, str(exc))
        reply = Reply(status, error_body(message), headers=dict(getattr(exc, "headers", None) or {}))
        dispatcher.record(request, None, reply)
        return response(reply)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(dispatcher.operations.shutdown)  # running operations finish first
        registry.close()

    routes = [Route(e.full_path, dispatcher.route(e), methods=[e.method]) for e in ENDPOINTS]
    routes += [Route(path, ready, methods=["GET"]) for path in ("/health/ready", f"{PREFIX}/health/ready")]
    routes += [Route(path, spec, methods=["GET"]) for path in ("/openapi.json", f"{PREFIX}/openapi.json")]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
