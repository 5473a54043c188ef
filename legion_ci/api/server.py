"""Run the management API with uvicorn; prints `listening on http://HOST:PORT` once it accepts connections."""

from __future__ import annotations

from legion_ci.api.app import create_app
from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings

DEFAULT_PORT = 8090


def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> int:
    """Serve until SIGINT/SIGTERM (in-flight requests finish first); returns the exit status."""
    import uvicorn

    from legion_ci.asgi.protocol import PROTOCOL, limits

    limits()
    app = create_app(settings)  # configuration errors surface before the port is bound
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=PROTOCOL,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn exits when the address is taken
        raise ConfigError(f"--port: cannot listen on {host}:{port} (in use, or not an address of this host)") from None
    sock.listen(config.backlog)  # connections are accepted from the announcement on
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1
