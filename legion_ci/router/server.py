"""Run the router: uvicorn with uvloop and httptools; prints `listening on http://HOST:PORT` once bound."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings
from legion_ci.router.app import RouterApp, Sticky
from legion_ci.router.source import POLL_INTERVAL, RegistryPoller
from legion_ci.router.table import RouteTable
from legion_ci.router.upstream import Upstream


def _watch_state(path: Path, interval: float = 1.0, grace: float = 120.0) -> None:
    """A router started for a LEGION_HOME stops (gracefully) once its state file stops naming it (after
    naming it once, or `grace` seconds after start): its home was deleted, or another router took over.
    No orphan outlives its home."""
    me, seen, deadline = os.getpid(), False, time.monotonic() + grace
    while True:
        time.sleep(interval)
        try:
            named = json.loads(path.read_text()).get("pid") == me
        except (OSError, ValueError, AttributeError):
            named = False
        seen = seen or named
        home_gone = not path.parent.parent.exists()
        if home_gone or (not named and (seen or time.monotonic() > deadline)):
            os.kill(me, signal.SIGTERM)
            return


def create_app(
    settings: Settings, target: str | None = None, interval: float = POLL_INTERVAL, timeout: float = 60.0
) -> RouterApp:
    """A router following the registry of `settings` (the deployments of `target`, or of every target)."""
    table = RouteTable()
    poller = RegistryPoller(Registry.from_settings(settings), table, target, interval)
    sticky = Sticky.of(settings.router_sticky_header, settings.router_sticky_cookie)
    return RouterApp(table, Upstream(timeout=timeout), poller, sticky, settings.router_shadow_timeout)


def serve(settings: Settings, host: str, port: int, target: str | None = None, timeout: float = 60.0) -> int:
    """Serve until SIGINT/SIGTERM (in-flight requests finish first); returns the exit status."""
    import uvicorn

    from legion_ci.asgi.protocol import PROTOCOL

    app = create_app(settings, target, timeout=timeout)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=PROTOCOL,  # header-size, slow-request and connection limits (legion_ci/asgi/protocol.py)
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=15,
        backlog=2048,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    if settings.router_state:
        threading.Thread(target=_watch_state, args=(settings.router_state,), daemon=True, name="state-watch").start()
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections are accepted from the announcement on
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)
    server.run(sockets=[sock])
    return 0 if server.started else 1
