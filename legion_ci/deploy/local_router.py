"""The local target's router process: one per LEGION_HOME, started by the first deploy, reused by the next,
found by its state file. (The router itself, the production code, is legion_ci/router/; this is deploy's side.)

$LEGION_HOME/router/router.json holds {url, pid, port, host, log, started_at}. The router keeps its port
across restarts (the stable URL clients call), unless that port has been taken in the meantime.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from legion_ci.core.artifact import write_json_atomic
from legion_ci.core.errors import ConfigError, DeployError
from legion_ci.core.processes import ours, port_free, ready, spawn, stop_pid, wait_ready
from legion_ci.core.settings import Settings, child_env, env_name

DEFAULT_PORT = 8000
ENV_PORT = env_name("router_port")


@dataclass(frozen=True)
class RouterInfo:
    url: str
    pid: int
    port: int
    host: str
    log: str
    started_at: float


def state_dir(settings: Settings) -> Path:
    return settings.home / "router"


def state_file(settings: Settings) -> Path:
    return state_dir(settings) / "router.json"


def read_state(settings: Settings) -> RouterInfo | None:
    try:
        return RouterInfo(**json.loads(state_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running(settings: Settings) -> RouterInfo | None:
    """The router of this home when its process is alive and answers ready."""
    info = read_state(settings)
    if info is not None and ours(info.pid, "router") and ready(info.url):
        return info
    return None


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    folder = state_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def requested_port(settings: Settings, port: int | None) -> int | None:
    """--port, else LEGION_ROUTER_PORT, else None (choose)."""
    return port if port is not None else settings.router_port


def ensure(settings: Settings, host: str = "127.0.0.1", port: int | None = None) -> tuple[RouterInfo, bool]:
    """The running router of this home, or a new one started detached; returns (info, started)."""
    wanted = requested_port(settings, port)
    with _locked(settings):
        info = running(settings)
        if info is not None:
            if wanted not in (None, 0, info.port):
                raise ConfigError(
                    f"the router of {settings.home} already listens on {info.url}, not port {wanted}; "
                    "stop it first with `legion-ci router stop`"
                )
            return info, False
        previous = read_state(settings)
        candidates = (
            [wanted]
            if wanted is not None
            else [p for p in ((previous.port if previous else None), DEFAULT_PORT) if p and port_free(host, p)] + [0]
        )
        error: DeployError | None = None
        for candidate in candidates:
            try:
                return _start(settings, host, candidate or 0), True
            except DeployError as exc:  # the port was taken between the check and the bind: try the next
                error = exc
        assert error is not None
        raise error


def _start(settings: Settings, host: str, port: int) -> RouterInfo:
    log = state_dir(settings) / "router.log"
    command = ["router", "serve", "--host", host, "--port", str(port), "--target", "local"]
    env = child_env(settings, router_state=state_file(settings))  # it stops once the file stops naming it
    endpoint = spawn(command, log, env)
    wait_ready(endpoint, "router")
    info = RouterInfo(endpoint["url"], int(endpoint["pid"]), int(endpoint["port"]), host, str(log), time.time())
    write_json_atomic(state_file(settings), asdict(info))
    return info


def stop(settings: Settings) -> RouterInfo | None:
    """Stop this home's router (after its in-flight requests); returns what was stopped."""
    with _locked(settings):
        info = read_state(settings)
        if info is None:
            return None
        stopped = stop_pid(info.pid, "router") if info.pid else False
        # Keep the port (the next start reuses it: the URL callers know stays the same); pid 0 is "not running".
        write_json_atomic(state_file(settings), {**asdict(info), "pid": 0})
        return info if stopped else None


def status(settings: Settings) -> dict[str, Any]:
    info = read_state(settings)
    if info is None:
        return {"running": False, "state_file": str(state_file(settings))}
    return {"running": running(settings) is not None, **asdict(info)}


def wait_routed(info: RouterInfo, deployment_id: int, weight: int, timeout: float = 15.0) -> None:
    """Block until the router's table routes `deployment_id` at `weight` (it re-reads the registry every half
    second; a deployment is recorded at 0 and then given its weight, so seeing it listed is not enough), so
    the stable URL serves the new deployment the moment deploy returns."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            routes = httpx.get(f"{info.url}/routes", timeout=2.0).json()
            for model in routes.get("models", {}).values():
                for entry in model.get("deployments", []):
                    routed = entry.get("deployment_id") == deployment_id and entry.get("routed")
                    if routed and entry.get("weight") == weight:
                        return
            last = f"generation {routes.get('generation')}, registry error: {routes.get('registry_error')}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise DeployError(
        f"the router on {info.url} did not route deployment {deployment_id} at weight {weight} "
        f"within {timeout:g}s ({last})"
    )
