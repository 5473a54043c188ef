"""Run the model server: uvicorn with uvloop and httptools (with legion_ci.asgi.protocol's limits); prints
`listening on http://HOST:PORT` once the socket accepts connections.

Start-up loads the model with scikit-learn and picks the fastest predictor that gives its answers. When
that predictor is a plain-numpy LinearPlan, the process saves the plan in the plan cache
(serving/plan_cache.py: $LEGION_HOME/cache/plans, keyed by the artifact id and the model file's sha256)
and re-executes itself
(same pid, same command plus `--plan FILE`) as a slim server that never imports scikit-learn, scipy or
pandas: about a third of the memory. The next server of the same artifact finds the plan in the cache and
starts slim at once, in well under a second, since importing scikit-learn is most of a cold start. Set
LEGION_SERVE_SLIM=off to keep the full process.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ArtifactError, ConfigError
from legion_ci.core.settings import Settings, child_env
from legion_ci.serving import plan_cache
from legion_ci.serving.options import ServeOptions

PROMETHEUS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode has no other switch
METRICS_DIR_PREFIX = "legion-metrics-"
log = logging.getLogger(__name__)


def _uvicorn_kwargs(options: ServeOptions) -> dict[str, Any]:
    from legion_ci.asgi.protocol import PROTOCOL

    return {
        "host": options.host,
        "port": options.port,
        "loop": "uvloop",
        "http": PROTOCOL,
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": 10,
        "backlog": 2048,
        "ws": "none",
        "interface": "asgi3",
    }


def _announce(sock: Any, backlog: int) -> None:
    """Listen, then say so: from this line on, connections are accepted (queued until the loop runs)."""
    sock.listen(backlog)
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)


def check_artifact(path: str | Path) -> Artifact:
    """Open the artifact and load its model, so a bad artifact fails before the port is bound."""
    art = Artifact.open(path)
    try:
        art.model  # noqa: B018 - loads and verifies the model file
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot load the model: {exc}") from None
    return art


def _cached_plan(art: Artifact, settings: Settings) -> Path | None:
    """The cached plan of this artifact, once its model file is checked against the manifest; else None."""
    cached = plan_cache.cache_file(art, settings)
    if not settings.serve_slim or not cached.is_file():
        return None
    art.verify()  # the plan stands for the model only while the model file is the one the manifest names
    return cached


def _predictor(art: Artifact, plan: Path | None) -> Any:
    from legion_ci.serving.fastpath import LinearPlan
    from legion_ci.serving.predictor import Predictor

    if plan is None:
        return None
    if not plan.name.startswith(f"plan-{plan_cache.stamp(art)}"):
        raise ConfigError(f"--plan: {plan} was not made from the artifact {art.path}")
    try:
        return Predictor.from_plan(LinearPlan.load(plan))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"--plan: cannot read {plan}: {exc}") from None


def _argv(artifact_path: str | Path, options: ServeOptions, plan: Path | None) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "legion_ci",
        "serve",
        str(artifact_path),
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--workers",
        str(options.workers),
        "--capture-rate",
        repr(options.capture_rate),
        "--max-rows",
        str(options.max_rows),
        "--max-body-bytes",
        str(options.max_body_bytes),
        "--ship-interval",
        repr(options.ship_interval),
    ]
    if plan is not None:
        args += ["--plan", str(plan)]
    if not options.auth:
        args.append("--no-auth")
    if not options.capture:
        args.append("--no-capture")
    return args


def _go_slim(art: Artifact, artifact_path: str | Path, options: ServeOptions, settings: Settings) -> None:
    """Save the verified plan and exec the slim server in this process's place (returns only if it cannot)."""
    from legion_ci.serving.app import create_app

    app = create_app(art, options, settings)  # checks auth settings etc. before we exec
    plan = app.predictor.plan
    if plan is None or not settings.serve_slim:
        return
    cached = plan_cache.save(plan, art, settings)
    if cached is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, _argv(artifact_path, options, cached), {**os.environ, **child_env(settings)})


def serve(artifact_path: str | Path, options: ServeOptions, settings: Settings, plan: Path | None = None) -> int:
    """Serve until SIGINT/SIGTERM with the settings the process read at start; returns the exit status."""
    from legion_ci.asgi.protocol import limits

    limits()  # a bad LEGION_HTTP_* value fails here, before the port is bound
    if options.workers < 1:
        raise ConfigError(f"--workers: {options.workers} (expected 1 or more)")
    if not 0.0 <= options.capture_rate <= 1.0:
        raise ConfigError(f"--capture-rate: {options.capture_rate} (expected a number from 0 to 1)")
    art = Artifact.open(artifact_path)
    predictor = None
    if plan is None:
        plan = _cached_plan(art, settings)
        try:
            predictor = _predictor(art, plan)
        except ConfigError as exc:  # a damaged cache entry: drop it and make the plan again
            log.warning("plan cache: %s; rebuilding it from the model", exc)
            plan_cache.cache_file(art, settings).unlink(missing_ok=True)
            plan = None
        if plan is None:
            art = check_artifact(artifact_path)
            _go_slim(art, artifact_path, options, settings)
    else:
        predictor = _predictor(art, plan)
    if options.workers > 1:
        return _serve_workers(Path(artifact_path).resolve(), options, settings, plan)
    return _serve_one(art, options, settings, predictor)


def _serve_one(art: Artifact, options: ServeOptions, settings: Settings, predictor: Any) -> int:
    import uvicorn

    from legion_ci.serving.app import create_app

    app = create_app(art, options, settings, predictor)
    config = uvicorn.Config(app, **_uvicorn_kwargs(options))
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    _announce(sock, config.backlog)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def worker_app(artifact_path: str, options: ServeOptions, settings: Settings, plan: Path | None) -> Any:
    """uvicorn factory run in each worker process; its arguments travel pickled with uvicorn's Config."""
    from legion_ci.serving.app import create_app

    art = Artifact.open(artifact_path) if plan else check_artifact(artifact_path)
    return create_app(art, options, settings, _predictor(art, plan))


def _serve_workers(artifact_path: Path, options: ServeOptions, settings: Settings, plan: Path | None) -> int:
    """Several worker processes on one socket; metrics are summed through PROMETHEUS_MULTIPROC_DIR.

    prometheus_client reads that variable in each worker, which inherits this process's environment; so
    without it, this server executes itself again with it set (os.environ itself is never written)."""
    import shutil

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    metrics_dir = os.environ.get(PROMETHEUS_DIR_VARIABLE)
    if not metrics_dir:
        fresh = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
        sys.stdout.flush()
        sys.stderr.flush()
        env = {**os.environ, **child_env(settings), PROMETHEUS_DIR_VARIABLE: fresh}
        os.execve(sys.executable, _argv(artifact_path, options, plan), env)
    ours = Path(str(metrics_dir)).name.startswith(METRICS_DIR_PREFIX)
    try:
        factory = functools.partial(worker_app, str(artifact_path), options, settings, plan)
        config = uvicorn.Config(factory, factory=True, workers=options.workers, **_uvicorn_kwargs(options))
        sock = config.bind_socket()
        _announce(sock, config.backlog)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if ours:
            shutil.rmtree(str(metrics_dir), ignore_errors=True)
    return 0


def configure_logging() -> None:
    logging.getLogger("legion_ci").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(message)s")
