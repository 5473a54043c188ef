"""The A/B router as a raw ASGI app: model paths go to a backend chosen by weight, the rest is its own.

  /api/model/NAME/..., /v2/models/NAME/...   proxied (see paths.py for version pinning)
  GET /health/live, /health/ready            the router itself
  GET /routes                                the table it routes by, with in-flight counts (JSON)
  GET /metrics                               Prometheus metrics (metrics.py)

A request that could not reach its backend (connection refused: a replica that is stopping or gone) is
sent to another backend of the same model; one that reached a backend and failed there is answered 502,
since sending it again could run it twice. Every answer carries X-Request-ID (the caller's, or a new one)
and X-Legion-Deployment (the deployment that answered).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from legion_ci.asgi.http import BodyTooLarge, ClientGone, dumps, read_body, respond, send_bytes
from legion_ci.asgi.lifespan import run_lifespan
from legion_ci.asgi.request_id import request_id_for
from legion_ci.asgi.types import Headers, Receive, Scope, Send
from legion_ci.router import paths
from legion_ci.router.metrics import CONTENT_TYPE, RouterMetrics
from legion_ci.router.source import RegistryPoller
from legion_ci.router.table import Backend, RouteTable
from legion_ci.router.upstream import HOP_BY_HOP, NotSent, Upstream, UpstreamFailed

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024 * 1024
DOWN_FOR = 2.0  # seconds a replica that refused a connection is skipped


class RouterApp:
    """Build with a RouteTable (and, to follow the registry, a RegistryPoller that fills it)."""

    def __init__(self, table: RouteTable, upstream: Upstream, poller: RegistryPoller | None = None) -> None:
        self.table, self.upstream, self.poller = table, upstream, poller
        self.started_at = time.time()
        self.ready = False
        self.down: dict[str, float] = {}
        self.metrics = RouterMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.startup, self.shutdown)

    async def startup(self) -> None:
        await self.upstream.start()
        if self.poller is not None:
            self.poller.start()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        if self.poller is not None:
            await self.poller.stop()
        await self.upstream.close()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        raw = scope.get("raw_path")  # as the client sent it (still percent-encoded): what is forwarded
        target = paths.parse(raw.decode("latin-1") if raw else path, self.table.versions)
        if target is not None:
            await self.proxy(scope, receive, send, target)
        elif path in ("/health/live", "/v2/health/live"):
            await _json(send, 200, {"status": "live"})
        elif path in ("/health/ready", "/v2/health/ready"):
            ok = self.ready
            await _json(
                send, 200 if ok else 503, {"status": "ready" if ok else "starting", "generation": self.table.generation}
            )
        elif path == "/routes":
            await _json(send, 200, self.routes())
        elif path == "/metrics":
            await respond(send, 200, self.metrics.render(self.table), [], CONTENT_TYPE)
        else:
            await _json(
                send,
                404,
                {
                    "error": f"no endpoint {path} (model paths start /api/model/NAME/ or /v2/models/NAME; see /routes)",
                    "status": 404,
                },
            )

    def routes(self) -> dict[str, Any]:
        poller = self.poller
        return {
            "generation": self.table.generation,
            "models": self.table.describe(),
            "loaded_at": poller.loaded_at if poller else None,
            "registry_error": poller.error if poller else None,
        }

    async def proxy(self, scope: Scope, receive: Receive, send: Send, target: paths.Target) -> None:
        start = time.perf_counter()
        try:
            body = await read_body(scope, receive, MAX_BODY)
        except BodyTooLarge:
            await _json(send, 413, {"error": f"request body is over the router's limit of {MAX_BODY} bytes"})
            return
        except ClientGone:
            return
        rid, headers = _forward_headers(scope)
        query = scope.get("query_string") or b""
        suffix = "?" + query.decode("latin-1") if query else ""
        tried: set[str] = set()
        reasons: list[str] = []
        while True:
            backend = self._pick(target, tried)
            if backend is None:
                break
            path = target.path_for(backend.version) + suffix
            backend.inflight += 1
            try:
                status, answer_headers, payload = await self.upstream.send(
                    scope["method"], backend.url, path, headers, body
                )
            except NotSent as exc:
                tried.add(backend.url)
                self.down[backend.url] = time.monotonic() + DOWN_FOR
                self.metrics.refused[target.model] += 1
                log.warning("request %s: %s refused (%s); trying another replica", rid.decode(), backend.url, exc)
                reasons.append(str(exc))
                continue
            except UpstreamFailed as exc:
                log.warning("request %s to %s%s failed: %s", rid.decode(), backend.url, path, exc)
                await _json(
                    send,
                    502,
                    {
                        "error": f"model {target.model} version {backend.version} did not answer: {exc}",
                        "status": 502,
                        "request_id": rid.decode(),
                    },
                    rid,
                )
                self.metrics.observe(target.model, backend.version, 502, time.perf_counter() - start)
                return
            finally:
                backend.inflight -= 1
            backend.served += 1
            self.down.pop(backend.url, None)
            await send_bytes(send, status, _answer_headers(answer_headers, rid, backend), payload)
            self.metrics.observe(target.model, backend.version, status, time.perf_counter() - start)
            return
        status = await self._no_backend(send, target, reasons, rid)
        self.metrics.observe(target.model, target.version or "-", status, time.perf_counter() - start)

    def _pick(self, target: paths.Target, tried: set[str]) -> Backend | None:
        """By weight, avoiding replicas that refused a connection lately unless nothing else is left."""
        if self.down:
            now = time.monotonic()
            self.down = {url: until for url, until in self.down.items() if until > now}
            backend = self.table.pick(target.model, target.version, tried | set(self.down))
            if backend is not None:
                return backend
        return self.table.pick(target.model, target.version, tried)

    async def _no_backend(self, send: Send, target: paths.Target, reasons: list[str], rid: bytes) -> int:
        if reasons:
            status, message = (
                502,
                (f"no replica of model {target.model} could be reached ({len(reasons)} refused the connection)"),
            )
        elif target.model not in self.table.models():
            status, message = (
                404,
                (
                    f"model {target.model!r} has no deployment serving through this router "
                    f"(serving: {', '.join(self.table.models()) or 'none'})"
                ),
            )
        elif target.version is not None:
            status, message = (
                404,
                (
                    f"model {target.model!r} version {target.version!r} is not deployed "
                    f"(deployed: {', '.join(self.table.versions(target.model))})"
                ),
            )
        else:
            status, message = 503, f"model {target.model!r} has no deployment with a traffic weight above 0"
        await _json(send, status, {"error": message, "status": status, "request_id": rid.decode()}, rid)
        return status


def _forward_headers(scope: Scope) -> tuple[bytes, Headers]:
    """Request headers for the backend: hop-by-hop ones dropped, X-Request-ID and X-Forwarded-For set."""
    given: bytes | None = None
    headers: Headers = []
    forwarded = b""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            given = value
        elif key == b"x-forwarded-for":
            forwarded = value
        elif key not in HOP_BY_HOP:
            headers.append((key, value))
    rid = request_id_for(given)
    client = scope.get("client")
    if client:
        forwarded = (forwarded + b", " if forwarded else b"") + str(client[0]).encode()
    headers.append((b"x-request-id", rid))
    if forwarded:
        headers.append((b"x-forwarded-for", forwarded))
    return rid, headers


def _answer_headers(headers: Headers, rid: bytes, backend: Backend) -> Headers:
    out = [(k, v) for k, v in headers if k != b"x-request-id"]
    out.append((b"x-request-id", rid))
    out.append((b"x-legion-deployment", str(backend.deployment_id).encode()))
    return out


async def _json(send: Send, status: int, data: Any, rid: bytes | None = None) -> None:
    await respond(send, status, dumps(data), [(b"x-request-id", rid)] if rid else [])
