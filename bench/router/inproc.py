"""The router's own CPU per request, in process: RouterApp called as uvicorn would call it, its backend a
canned answer (no sockets, no model server), so the figure is the router's Python code alone (parse the
path, read the body, pick a backend, build headers, count metrics, answer) and hardly moves with the
machine's load, unlike the end-to-end figures of run.py.

    python bench/router/inproc.py [--requests 20000] [--rounds 5] [--sticky] [--mirror]

--sticky sends an X-User-ID header and configures the router to route by it; --mirror gives a second
deployment a 10% mirror share (the copies go to the canned backend too). Prints microseconds of CPU per
request: the median over the rounds, and each round. Run it with PYTHONPATH set to the tree to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from legion_ci.router.app import RouterApp
from legion_ci.router.table import Route, RouteTable

BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
ANSWER = (200, [(b"content-type", b"application/json")], b'{"model":"iris","version":"1.0.0","predictions":[0]}')


class CannedUpstream:
    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, *args: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return ANSWER


async def run(requests: int, sticky: bool, mirror: bool) -> float:
    table = RouteTable()
    routes = [Route(1, "iris", "1.0.0", 80, ("http://a",)), Route(2, "iris", "2.0.0", 20, ("http://b",))]
    kwargs: dict[str, Any] = {}
    if mirror or sticky:
        from legion_ci.router.app import Sticky  # only in the version with sticky and shadow routing

        kwargs["sticky"] = Sticky.of("X-User-ID" if sticky else None, None)
    if mirror:
        routes.append(Route(3, "iris", "3.0.0", 0, ("http://c",), 10))
    table.replace(routes)
    app = RouterApp(table, CannedUpstream(), **kwargs)  # type: ignore[arg-type]
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"user-agent", b"wrk"),
    ]
    if sticky:
        headers.append((b"x-user-id", b"user-0"))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    start = time.process_time()
    for i in range(requests):
        if sticky:
            headers[-1] = (b"x-user-id", b"user-%d" % i)
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/model/iris/invoke",
            "raw_path": b"/api/model/iris/invoke",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
        }
        await app(scope, receive, send)
        if mirror:
            await asyncio.sleep(0)  # let the shadow copies run (their CPU counts)
    spent = time.process_time() - start
    return spent / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sticky", action="store_true")
    parser.add_argument("--mirror", action="store_true")
    args = parser.parse_args()
    if (args.sticky or args.mirror) and "sticky" not in inspect.signature(RouterApp).parameters:
        parser.error("--sticky and --mirror need the router with sticky and shadow routing")
    rounds = [asyncio.run(run(args.requests, args.sticky, args.mirror)) for _ in range(args.rounds)]
    print(
        f"router CPU per request: {statistics.median(rounds):.1f} us (rounds: {', '.join(f'{r:.1f}' for r in rounds)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
