"""Model-server processes on this machine: start, health-check, stop (only processes we started)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from legion_ci.errors import DeployError

READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(artifact_path: str, log_path: Path, env: dict[str, str], extra_args: list[str],
                 port: int | None = None) -> dict[str, Any]:
    """Start `legion-ci serve` detached from us; returns {url, pid, port} once it answers ready."""
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "legion_ci", "serve", artifact_path, "--host", "127.0.0.1", "--port", str(port),
             *extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
            raise DeployError(f"model server exited with status {proc.returncode} before it was ready "
                              f"(log {log_path}):\n{tail}")
        if ready(url):
            return {"url": url, "pid": proc.pid, "port": port, "log": str(log_path)}
        time.sleep(0.1)
    stop_pid(proc.pid)
    raise DeployError(f"model server on {url} was not ready after {READY_TIMEOUT:.0f}s (log {log_path})")


def ready(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ours(pid: int) -> bool:
    """True when `pid` is alive and is a legion-ci model server (guards against reused PIDs)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"legion_ci" in cmdline and b"serve" in cmdline


def alive(endpoint: dict[str, Any]) -> bool:
    return ours(int(endpoint["pid"])) and ready(endpoint["url"])


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, wait for the server to drain, then SIGKILL."""
    if not ours(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not ours(pid):
            return
        _reap(pid)
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
