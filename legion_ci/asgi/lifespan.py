"""The ASGI lifespan protocol: run `startup` before the first request and `shutdown` after the last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from legion_ci.asgi.types import Receive, Send

Hook = Callable[[], Awaitable[None]]


async def run_lifespan(receive: Receive, send: Send, startup: Hook, shutdown: Hook) -> None:
    """Answer the server's lifespan messages; a failing `startup` is reported and the server does not start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
