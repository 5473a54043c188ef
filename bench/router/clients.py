"""The router's upstream client against httpx doing the same forward: why router/upstream.py is not httpx.

    python bench/router/clients.py [--requests 3000] [--rounds 3]

One bare uvicorn app (uvloop, httptools) answers every request with a small JSON body, as a model server
would; each client forwards the iris invoke request to it over keep-alive connections, one request at a
time (the latency a lone caller sees through the router) and 16 at a time (the router under load).
`HttpxUpstream` is what upstream.py would be on httpx: its transport (connection pools, no client-level
defaults, the body left undecoded), the same NotSent/UpstreamFailed split. Figures: median microseconds
per request and requests per second, medians over the rounds; ratio = httpx / router's client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from legion_ci.core.processes import free_port
from legion_ci.router.upstream import HOP_BY_HOP, Headers, NotSent, Upstream, UpstreamFailed

BACKEND = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"model":"iris","version":"1.0.0","predictions":[0]}'})
"""
BODY = b'{"instances":[[5.1,3.5,1.4,0.2]]}'
HEADERS: Headers = [(b"content-type", b"application/json"), (b"x-request-id", b"bench-1")]


class HttpxUpstream:
    """upstream.Upstream's interface on httpx's transport."""

    def __init__(self, connect_timeout: float = 2.0, timeout: float = 60.0, keepalive: float = 3.0) -> None:
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout).as_dict()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=keepalive)
        self.transport = httpx.AsyncHTTPTransport(limits=limits)

    async def close(self) -> None:
        await self.transport.aclose()

    async def send(
        self, method: str, base: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        request = httpx.Request(
            method, base + target, headers=headers, content=body, extensions={"timeout": self.timeout}
        )
        try:
            response = await self.transport.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"cannot connect to {base}: {exc}") from exc
        except httpx.TransportError as exc:
            raise UpstreamFailed(str(exc)) from exc
        try:
            payload = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        kept = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
        return response.status_code, kept, payload


async def measure(client: Upstream | HttpxUpstream, base: str, requests: int, concurrency: int) -> tuple[float, float]:
    """(median microseconds per request, requests per second) over `requests` forwards."""
    times: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            status, _, _ = await client.send("POST", base, "/api/model/iris/1.0.0/invoke", HEADERS, BODY)
            assert status == 200
            times.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(50) for _ in range(concurrency)))  # warm: open every connection
    times.clear()
    began = time.perf_counter()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    wall = time.perf_counter() - began
    await client.close()
    return statistics.median(times) * 1e6, len(times) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="legion-bench-clients-"))
    (folder / "backend.py").write_text(BACKEND)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "backend:app", "--app-dir", str(folder), "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"]
    backend = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for concurrency in (1, 16):
                for name in ("router", "httpx"):
                    client: Upstream | HttpxUpstream = Upstream() if name == "router" else HttpxUpstream()
                    got = uvloop.run(measure(client, base, args.requests, concurrency))
                    figures.setdefault((name, concurrency), []).append(got)
                    print(f"c{concurrency} {name:6} {got[0]:8.0f} us/request {got[1]:7.0f} req/s", file=sys.stderr)
    finally:
        backend.terminate()
        backend.wait()
    print(f"# Upstream client: router's own vs httpx ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print("| concurrent | router us/req | httpx us/req | ratio | router req/s | httpx req/s |")
    print("|---|---|---|---|---|---|")
    for concurrency in (1, 16):
        mine = [statistics.median(x) for x in zip(*figures[("router", concurrency)], strict=True)]
        theirs = [statistics.median(x) for x in zip(*figures[("httpx", concurrency)], strict=True)]
        print(
            f"| {concurrency} | {mine[0]:.0f} | {theirs[0]:.0f} | {theirs[0] / mine[0]:.1f}x | "
            f"{mine[1]:.0f} | {theirs[1]:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
