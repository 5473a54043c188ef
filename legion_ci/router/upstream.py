"""Requests to the model servers over keep-alive connection pools: a small HTTP/1.1 client on asyncio
protocols and the httptools parser (the one uvicorn uses), one write per request and no per-request objects
beyond the parser. The errors are told apart: a request that never reached its backend (NotSent: refused,
unreachable, connect timeout) may go to another backend; any other failure (UpstreamFailed) may not.

Not httpx (a dependency anyway): forwarding through httpx's transport cost 7-10x the CPU per request
and gave 0.12x the throughput end to end; figures and commands in docs/architecture.md.

Idle connections are dropped after `keepalive` seconds, under uvicorn's 5 s, so the router never writes a
request into a connection its backend is closing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from urllib.parse import urlsplit

import httptools

Headers = list[tuple[bytes, bytes]]

# Never forwarded in either direction (RFC 9110 7.6.1), plus the ones the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)


class NotSent(Exception):
    """The backend could not be reached (refused, unreachable, connect timeout): nothing was sent."""


class UpstreamFailed(Exception):
    """The backend was reached but gave no complete answer (reset, closed early, timed out)."""


class UpstreamTimeout(UpstreamFailed):
    """The backend was reached but did not answer in time."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a backend; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.head_only = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamFailed(f"unparsable answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(UpstreamFailed(f"connection closed before the answer was complete ({exc or 'EOF'})"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name not in HOP_BY_HOP:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_only:
            self.on_message_complete()
            self.close()  # the parser would wait for a body a HEAD answer does not have

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            status = self.parser.get_status_code()
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            if not self.parser.should_keep_alive():
                self.close()
            answer.set_result((status, self.headers, body))

    # use
    def request(self, payload: bytes, head_only: bool) -> asyncio.Future[tuple[int, Headers, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.headers, self.body, self.head_only = [], [], head_only
        self.transport.write(payload)
        return self.answer

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def fail(self, exc: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)


class _Pool:
    """Idle connections to one backend, newest last."""

    def __init__(self, host: str, port: int, host_header: bytes) -> None:
        self.host, self.port, self.host_header = host, port, host_header
        self.idle: deque[_Connection] = deque()


class Upstream:
    """Every backend's connection pool; `send` forwards one request and returns the whole answer."""

    def __init__(
        self, connect_timeout: float = 2.0, timeout: float = 60.0, per_backend: int = 256, keepalive: float = 3.0
    ) -> None:
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.per_backend, self.keepalive = per_backend, keepalive
        self.pools: dict[str, _Pool] = {}

    async def start(self) -> None:
        """Nothing to open ahead: connections are made on first use."""

    async def close(self) -> None:
        for pool in self.pools.values():
            while pool.idle:
                pool.idle.pop().close()
        self.pools.clear()

    def _pool(self, base: str) -> _Pool:
        pool = self.pools.get(base)
        if pool is None:
            parts = urlsplit(base)
            if parts.scheme != "http" or not parts.hostname:
                raise NotSent(f"{base}: only http:// backends are supported")
            port = parts.port or 80
            pool = self.pools[base] = _Pool(parts.hostname, port, parts.netloc.encode())
        return pool

    async def _acquire(self, pool: _Pool) -> _Connection:
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            if conn.usable() and now - conn.idle_since < self.keepalive:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, pool.host, pool.port), self.connect_timeout
            )
        except (TimeoutError, OSError) as exc:
            raise NotSent(f"cannot connect to {pool.host}:{pool.port}: {exc or type(exc).__name__}") from exc
        return conn

    def _release(self, pool: _Pool, conn: _Connection) -> None:
        if conn.usable() and len(pool.idle) < self.per_backend:
            conn.idle_since = time.monotonic()
            pool.idle.append(conn)
        else:
            conn.close()

    async def send(
        self, method: str, base: str, target: str, headers: Headers, body: bytes, timeout: float | None = None
    ) -> tuple[int, Headers, bytes]:
        """Forward `method target` to the backend at `base` (http://host:port); returns status, headers
        (hop-by-hop ones removed) and the whole body. `timeout` (default: the pool's) bounds the wait for the
        answer once the request is written."""
        pool = self._pool(base)
        conn = await self._acquire(pool)
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", pool.host_header, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        lines += (b"\r\n", body)
        pending = conn.request(b"".join(lines), method == "HEAD")
        limit = self.timeout if timeout is None else timeout
        timer = asyncio.get_running_loop().call_later(limit, conn.fail, UpstreamTimeout(f"no answer within {limit:g}s"))
        try:
            answer = await pending
        except BaseException:  # failed, or cancelled: the connection may hold half an answer
            conn.close()
            raise
        finally:
            timer.cancel()
        self._release(pool, conn)
        return answer
