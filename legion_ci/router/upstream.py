"""Requests to the model servers over keep-alive connection pools (aiohttp), with the errors told apart:
a request that never reached its backend (NotSent) may go to another one; any other failure may not."""

from __future__ import annotations

import aiohttp

Headers = list[tuple[bytes, bytes]]

# Never forwarded in either direction (RFC 9110 7.6.1), plus the ones the proxy sets itself.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length",
})


class NotSent(Exception):
    """The backend could not be reached (refused, unreachable, connect timeout): nothing was sent."""


class UpstreamFailed(Exception):
    """The backend was reached but gave no complete answer (reset, closed early, timed out)."""


class Upstream:
    """One aiohttp session shared by every request; connections to each backend are reused."""

    def __init__(self, connect_timeout: float = 2.0, timeout: float = 60.0, per_backend: int = 256,
                 keepalive: float = 3.0) -> None:
        # keepalive stays under uvicorn's 5 s, so the router drops an idle connection before the
        # backend does and never writes a request into a socket the backend is closing.
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.per_backend, self.keepalive = per_backend, keepalive
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.per_backend, keepalive_timeout=self.keepalive,
                                         use_dns_cache=True, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def send(self, method: str, url: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        """Forward one request; returns status, headers (hop-by-hop removed) and the whole body."""
        assert self.session is not None, "Upstream.start() was not awaited"
        plain = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        try:
            async with self.session.request(method, url, headers=plain, data=body or None,
                                            allow_redirects=False, compress=None) as answer:
                payload = await answer.read()
                out = [(k.lower(), v) for k, v in answer.raw_headers if k.lower() not in HOP_BY_HOP]
                return answer.status, out, payload
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(str(exc) or type(exc).__name__) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamFailed(f"{type(exc).__name__}: {exc}") from exc
