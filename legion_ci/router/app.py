"""The A/B router as a raw ASGI app: model paths go to a backend chosen by weight, the rest is its own.

  /api/model/NAME/..., /v2/models/NAME/...   proxied (see paths.py for version pinning)
  GET /health/live, /health/ready            the router itself
  GET /routes                                the table it routes by, with in-flight counts (JSON)
  GET /metrics                               Prometheus metrics (metrics.py)

A request that could not reach its backend (connection refused: a replica that is stopping or gone) is
sent to another backend of the same model; one that reached a backend and failed there is answered 502,
since sending it again could run it twice. Every answer carries X-Request-ID (the caller's, or a new one)
and X-Legion-Deployment (the deployment that answered).

Sticky: with a sticky header (or cookie) configured, a request carrying it goes to the deployment its value
hashes to (table.py), the same one every time while the weights stand; without it, by weight.
Shadow: a deployment with a mirror share gets a copy of that share of the model's weighted requests, sent
after the caller's answer has gone out, with X-Legion-Shadow: 1 (its server captures the prediction marked
shadow, under the same request id) and a timeout of its own. Its answer is dropped; whatever it does (fail,
hang, die) reaches only the metrics, never the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from legion_ci.asgi.http import BodyTooLarge, ClientGone, dumps, read_body, respond, send_bytes
from legion_ci.asgi.lifespan import run_lifespan
from legion_ci.asgi.request_id import request_id_for
from legion_ci.asgi.types import Headers, Receive, Scope, Send
from legion_ci.router import paths
from legion_ci.router.metrics import CONTENT_TYPE, RouterMetrics
from legion_ci.router.source import RegistryPoller
from legion_ci.router.table import Backend, RouteTable, sticky_point
from legion_ci.router.upstream import HOP_BY_HOP, NotSent, Upstream, UpstreamFailed, UpstreamTimeout

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024 * 1024
DOWN_FOR = 2.0  # seconds a replica that refused a connection is skipped
MAX_SHADOWS = 128  # mirrored requests in flight at once; beyond it a copy is dropped (counted), never queued
SHADOW_NAME = b"x-legion-shadow"
SHADOW_HEADER = (SHADOW_NAME, b"1")
# Marks an X-Request-ID the router made up (the caller sent none): a v2 body's own `id` then wins at the
# server, which answers with it, and the router passes that answer's id on to the caller.
MINTED_NAME = b"x-legion-request-id-minted"


@dataclass(frozen=True)
class Sticky:
    """Where a request's sticky key is read: a header, else a cookie (lower-case bytes; None: not used)."""

    header: bytes | None = None
    cookie: bytes | None = None

    @classmethod
    def of(cls, header: str | None, cookie: str | None) -> Sticky:
        return cls(header.lower().encode("latin-1") if header else None, cookie.encode("latin-1") if cookie else None)


class RouterApp:
    """Build with a RouteTable (and, to follow the registry, a RegistryPoller that fills it)."""

    def __init__(
        self,
        table: RouteTable,
        upstream: Upstream,
        poller: RegistryPoller | None = None,
        sticky: Sticky | None = None,
        shadow_timeout: float = 5.0,
    ) -> None:
        self.table, self.upstream, self.poller = table, upstream, poller
        self.sticky = sticky or Sticky()
        self.shadow_timeout = shadow_timeout
        self.shadows: set[asyncio.Task[None]] = set()
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
        for task in list(self.shadows):
            task.cancel()
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
        rid, headers, key = _forward_headers(scope, self.sticky)
        sticky = sticky_point(target.model, key) if key else None
        query = scope.get("query_string") or b""
        suffix = "?" + query.decode("latin-1") if query else ""
        tried: set[str] = set()
        reasons: list[str] = []
        while True:
            backend = self._pick(target, tried, sticky)
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
            if self.table.mirrored and target.version is None:
                for shadow in self.table.mirror(target.model, backend.deployment_id):
                    self._mirror(scope["method"], shadow, target.path_for(shadow.version) + suffix, headers, body)
            return
        status = await self._no_backend(send, target, reasons, rid)
        self.metrics.observe(target.model, target.version or "-", status, time.perf_counter() - start)

    def _pick(self, target: paths.Target, tried: set[str], sticky: float | None) -> Backend | None:
        """By weight (or sticky key), avoiding replicas that refused a connection lately unless nothing else
        is left."""
        if self.down:
            now = time.monotonic()
            self.down = {url: until for url, until in self.down.items() if until > now}
            backend = self.table.pick(target.model, target.version, tried | set(self.down), sticky)
            if backend is not None:
                return backend
        return self.table.pick(target.model, target.version, tried, sticky)

    def _mirror(self, method: str, backend: Backend, path: str, headers: Headers, body: bytes) -> None:
        """Copy an answered request to a shadow backend in a task of its own (the caller has its answer)."""
        if len(self.shadows) >= MAX_SHADOWS:
            self.metrics.observe_shadow(backend.model, backend.version, "dropped")
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(method, backend, path, [*headers, SHADOW_HEADER], body)
        )
        self.shadows.add(task)
        task.add_done_callback(self.shadows.discard)

    async def _shadow(self, method: str, backend: Backend, path: str, headers: Headers, body: bytes) -> None:
        start = time.perf_counter()
        seconds: float | None = None
        try:
            status, _, _ = await self.upstream.send(method, backend.url, path, headers, body, self.shadow_timeout)
            seconds = time.perf_counter() - start
            outcome = "ok" if status < 500 else "error"
        except NotSent:
            outcome = "unreachable"
        except UpstreamTimeout:
            outcome = "timeout"
        except UpstreamFailed:
            outcome, seconds = "error", time.perf_counter() - start
        except Exception:  # a shadow's trouble is never the caller's: log it, count it, go on
            log.exception("shadow request to %s%s failed", backend.url, path)
            outcome = "error"
        self.metrics.observe_shadow(backend.model, backend.version, outcome, seconds)

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


def _forward_headers(scope: Scope, sticky: Sticky) -> tuple[bytes, Headers, bytes | None]:
    """Request headers for the backend: hop-by-hop ones dropped, X-Request-ID and X-Forwarded-For set, a
    caller's X-Legion-Shadow dropped (only the router marks a copy shadow); and the request's sticky key."""
    given: bytes | None = None
    headers: Headers = []
    forwarded = b""
    key: bytes | None = None
    cookies: list[bytes] = []
    sticky_header, want_cookie = sticky.header, sticky.cookie is not None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value
        elif name == b"x-forwarded-for":
            forwarded = value
        elif name in (SHADOW_NAME, MINTED_NAME):
            continue
        elif name not in HOP_BY_HOP:
            headers.append((name, value))
            if name == sticky_header and value:
                key = value
            elif want_cookie and name == b"cookie":
                cookies.append(value)
    if key is None and cookies:
        key = _cookie(cookies, sticky.cookie)
    rid = request_id_for(given)
    client = scope.get("client")
    if client:
        forwarded = (forwarded + b", " if forwarded else b"") + str(client[0]).encode()
    headers.append((b"x-request-id", rid))
    if given is None:
        headers.append((MINTED_NAME, b"1"))
    if forwarded:
        headers.append((b"x-forwarded-for", forwarded))
    return rid, headers, key


def _cookie(values: list[bytes], name: bytes | None) -> bytes | None:
    """The value of cookie `name` in Cookie header values (RFC 6265: `a=1; b=2`), or None."""
    for value in values:
        for pair in value.split(b";"):
            key, sep, found = pair.strip().partition(b"=")
            if sep and key == name and found:
                return found.strip(b'"') or None
    return None


def _answer_headers(headers: Headers, rid: bytes, backend: Backend) -> Headers:
    """The backend's answer headers plus X-Legion-Deployment; X-Request-ID is the backend's when it sent one
    (a v2 body's `id` in place of an id the router made up), else the router's."""
    out = list(headers)
    if not any(k == b"x-request-id" for k, _ in headers):
        out.append((b"x-request-id", rid))
    out.append((b"x-legion-deployment", str(backend.deployment_id).encode()))
    return out


async def _json(send: Send, status: int, data: Any, rid: bytes | None = None) -> None:
    await respond(send, status, dumps(data), [(b"x-request-id", rid)] if rid else [])
