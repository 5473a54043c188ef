"""Run the router: uvicorn with uvloop and httptools; prints `listening on http://HOST:PORT` once bound."""

from __future__ import annotations

from legion_ci.config import Settings
from legion_ci.registry import Registry
from legion_ci.router.app import RouterApp
from legion_ci.router.source import POLL_INTERVAL, RegistryPoller
from legion_ci.router.table import RouteTable
from legion_ci.router.upstream import Upstream


def create_app(settings: Settings, target: str = "local", interval: float = POLL_INTERVAL,
               timeout: float = 60.0) -> RouterApp:
    """A router following the registry of `settings` (deployments of `target`)."""
    table = RouteTable()
    poller = RegistryPoller(Registry.from_settings(settings), table, target, interval)
    return RouterApp(table, Upstream(timeout=timeout), poller)


def serve(settings: Settings, host: str, port: int, target: str = "local", timeout: float = 60.0) -> int:
    """Serve until SIGINT/SIGTERM (in-flight requests finish first); returns the exit status."""
    import uvicorn

    app = create_app(settings, target, timeout=timeout)
    config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, log_level="warning", server_header=False, date_header=False,
                            timeout_graceful_shutdown=15, backlog=2048, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)
    server.run(sockets=[sock])
    return 0 if server.started else 1
