"""Run the model server: uvicorn with uvloop and httptools; prints `listening on http://HOST:PORT` once bound."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from legion_ci.artifact import Artifact
from legion_ci.config import Settings, load_settings
from legion_ci.errors import ArtifactError, ConfigError
from legion_ci.serving.options import ServeOptions

ENV_ARTIFACT = "LEGION_SERVE_ARTIFACT"
ENV_OPTIONS = "LEGION_SERVE_OPTIONS"


def _uvicorn_config(app: Any, options: ServeOptions) -> Any:
    import uvicorn

    return uvicorn.Config(
        app, host=options.host, port=options.port, loop="uvloop", http="httptools", lifespan="on",
        access_log=False, log_level="warning", server_header=False, date_header=False,
        timeout_graceful_shutdown=10, backlog=2048,
    )


def _announce(sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)


def check_artifact(path: str | Path) -> Artifact:
    """Open the artifact and load its model, so a bad artifact fails before the port is bound."""
    art = Artifact.open(path)
    try:
        art.model  # noqa: B018 - loads and verifies the model file
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind
        raise ArtifactError(f"{path}: cannot load the model: {exc}") from None
    return art


def app_from_env() -> Any:
    """uvicorn factory for worker processes: the artifact and options come from the environment."""
    import json

    from legion_ci.serving.app import create_app

    options = ServeOptions(**json.loads(os.environ[ENV_OPTIONS]))
    return create_app(check_artifact(os.environ[ENV_ARTIFACT]), options, load_settings())


def serve(artifact_path: str | Path, options: ServeOptions, settings: Settings | None = None) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status."""
    import uvicorn

    settings = settings or load_settings()
    if options.workers < 1:
        raise ConfigError(f"--workers: {options.workers} (expected 1 or more)")
    if not 0.0 <= options.capture_rate <= 1.0:
        raise ConfigError(f"--capture-rate: {options.capture_rate} (expected a number from 0 to 1)")
    art = check_artifact(artifact_path)
    if options.workers == 1:
        from legion_ci.serving.app import create_app

        app = create_app(art, options, settings)
        config = _uvicorn_config(app, options)
        server = uvicorn.Server(config)
        sock = config.bind_socket()
        _announce(sock)
        server.run(sockets=[sock])
        return 0 if server.started else 1
    return _serve_workers(Path(artifact_path).resolve(), options, settings)


def _serve_workers(artifact_path: Path, options: ServeOptions, settings: Settings) -> int:
    """Several worker processes on one socket; metrics are summed through PROMETHEUS_MULTIPROC_DIR."""
    import json

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    metrics_dir = Path(tempfile.mkdtemp(prefix="legion-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ[ENV_ARTIFACT] = str(artifact_path)
    os.environ[ENV_OPTIONS] = json.dumps(asdict(options))
    os.environ["LEGION_HOME"] = str(settings.home)
    try:
        config = uvicorn.Config(
            "legion_ci.serving.server:app_from_env", factory=True, host=options.host, port=options.port,
            loop="uvloop", http="httptools", lifespan="on", access_log=False, log_level="warning",
            server_header=False, date_header=False, workers=options.workers, timeout_graceful_shutdown=10,
            backlog=2048,
        )
        sock = config.bind_socket()
        _announce(sock)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def configure_logging() -> None:
    logging.getLogger("legion_ci").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(message)s")
