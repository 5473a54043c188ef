"""uvicorn's httptools protocol with the limits a server facing hostile clients needs, before any app code:

- the request line and headers together may not pass `max_header_bytes`: 431, then the connection closes;
- a request must arrive whole (headers and body) within `request_timeout` seconds of its first byte, and
  a new connection must start a request within `idle_timeout` (uvicorn only times out idle keep-alive
  connections): 408, then the connection closes;
- at most `max_connections` connections per worker process: one more gets 503 and is closed.

Each refusal is written with `Connection: close`, then the write side is shut and what the client still
sends is read and dropped for up to `LINGER_SECONDS` (or `LINGER_BYTES`), so a client that writes its whole
request before reading gets the status instead of a connection reset.

Limits are settings (legion_ci.core.settings: LEGION_HTTP_MAX_HEADER_BYTES, LEGION_HTTP_REQUEST_TIMEOUT,
LEGION_HTTP_IDLE_TIMEOUT, LEGION_HTTP_MAX_CONNECTIONS), read once per process.
Servers use it with `uvicorn.Config(..., http=PROTOCOL)`.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from legion_ci.core.settings import Settings, load_settings

PROTOCOL = "legion_ci.asgi.protocol:GuardedHttpToolsProtocol"
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    request_timeout: float
    idle_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            settings.http_max_header_bytes,
            settings.http_request_timeout,
            settings.http_idle_timeout,
            settings.http_max_connections,
        )


@functools.cache
def limits() -> ConnectionLimits:
    """This process's limits, from its settings (worker processes read the environment they inherit)."""
    return ConnectionLimits.from_settings(load_settings())


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus header-size, slow-request, idle and connection-count limits (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits()
        self._head_bytes = 0  # bytes of the request line and headers read so far
        self._reading_head = True
        self._request_timer: asyncio.TimerHandle | None = None  # idle at first, then per request
        self._lingering = -1  # bytes dropped since a refusal; -1 when not refusing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, b"too many connections to this server process; retry shortly")
            return
        self._request_timer = self.loop.call_later(self.limits.idle_timeout, self._timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self._refuse(431, b"request line and headers are over the limit of %d bytes" % self.limits.max_header_bytes)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(self.limits.request_timeout, self._timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        if self._lingering >= 0:
            return
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
        if size > self.limits.max_header_bytes:  # it all came in one read
            self._refuse(431, b"request line and headers are over the limit of %d bytes" % self.limits.max_header_bytes)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._lingering < 0:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_request_timer()
        self._reading_head = True
        if self._lingering < 0:
            super().on_message_complete()

    # -- refusals --------------------------------------------------------------------------------------
    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # the app is answering; the request did arrive
            return
        if cycle is not None and not cycle.more_body:
            return  # the request arrived whole; the app is working on it
        self._refuse(408, b"request not received in time (%g s)" % self.limits.request_timeout)

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer `status` and close, unless a response is under way (then just close)."""
        self._cancel_request_timer()
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() now says http.disconnect; its send() is dropped
            cycle.message_event.set()
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()
            return
        body = b'{"error":"' + message + b'","status":%d}' % status
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self._unset_keepalive_if_required()
        self._lingering = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
        self.flow.resume_reading()
