"""legion-ci processes on this machine (model servers, the router): start detached, health-check, stop.

Only processes we started are ever signalled: a PID is checked against its command line first, so a
PID the kernel reused for something else is left alone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from legion_ci.core.errors import DeployError

READY_TIMEOUT = 60.0
LABELS = {"serve": "model server", "router": "router"}
ANNOUNCE = re.compile(r"listening on (http://[^\s]+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def spawn(command: list[str], log_path: Path, env: dict[str, str], timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Start `python -m legion_ci COMMAND...` in its own session, its output appended to `log_path`;
    returns {url, pid, port, log} once it prints `listening on URL` (it need not be ready yet)."""
    return spawn_many([(command, log_path)], env, timeout)[0]


def spawn_many(
    jobs: list[tuple[list[str], Path]], env: dict[str, str], timeout: float = READY_TIMEOUT
) -> list[dict[str, Any]]:
    """Start several processes at once (each COMMAND with its log) and wait until each listens; if one
    fails, every one started here is stopped again before the error is raised."""
    launched: list[tuple[subprocess.Popen[bytes], list[str], Path, int]] = []
    if "JENKINS_URL" in os.environ:  # Jenkins kills what a build leaves running, unless told not to
        env = {**env, "BUILD_ID": "dontKillMe", "JENKINS_NODE_COOKIE": "dontKillMe"}
    try:
        for command, log_path in jobs:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            offset = log_path.stat().st_size if log_path.exists() else 0
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "legion_ci", *command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                    start_new_session=True,
                )
            launched.append((proc, command, log_path, offset))
        deadline = time.monotonic() + timeout
        return [_announced(proc, command, log_path, offset, deadline) for proc, command, log_path, offset in launched]
    except BaseException:
        for proc, command, _, _ in launched:
            stop_pid(proc.pid, command[0])
        raise


def _announced(
    proc: subprocess.Popen[bytes], command: list[str], log_path: Path, offset: int, deadline: float
) -> dict[str, Any]:
    kind = LABELS.get(command[0], command[0])
    while time.monotonic() < deadline:
        text = _read_from(log_path, offset)
        found = ANNOUNCE.search(text)
        if found:
            url = found[1].rstrip("/")
            return {"url": url, "pid": proc.pid, "port": int(url.rsplit(":", 1)[1]), "log": str(log_path)}
        if proc.poll() is not None:
            tail = "\n".join(text.splitlines()[-10:])
            raise DeployError(
                f"{kind} exited with status {proc.returncode} before it listened (log {log_path}):\n{tail}"
            )
        time.sleep(0.05)
    raise DeployError(f"{kind} did not start listening in time (log {log_path})")


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")


def start_server(
    artifact_path: str, log_path: Path, env: dict[str, str], extra_args: list[str], port: int = 0
) -> dict[str, Any]:
    """Start `legion-ci serve` on 127.0.0.1 (port 0: any free one) and wait until it answers ready."""
    endpoint = spawn(
        ["serve", str(artifact_path), "--host", "127.0.0.1", "--port", str(port), *extra_args], log_path, env
    )
    wait_ready(endpoint)
    return endpoint


def wait_ready(endpoint: dict[str, Any], command: str = "serve", timeout: float = READY_TIMEOUT) -> None:
    """Wait until the process answers /health/ready; stop it and raise DeployError if it never does."""
    pid, url, kind = int(endpoint["pid"]), str(endpoint["url"]), LABELS.get(command, command)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready(url):
            return
        if not ours(pid, command):
            raise DeployError(f"{kind} {url} (pid {pid}) exited before it was ready (log {endpoint.get('log')})")
        time.sleep(0.1)
    stop_pid(pid, command)
    raise DeployError(f"{kind} on {url} was not ready after {timeout:.0f}s (log {endpoint.get('log')})")


def ready(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ours(pid: int, command: str = "serve") -> bool:
    """True when `pid` is alive and runs `legion_ci COMMAND` (guards against reused PIDs)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z" or b"legion_ci" not in cmdline:
        return False
    at = cmdline.index(b"legion_ci")
    return cmdline[at + 1 : at + 2] == [command.encode()]


def alive(endpoint: dict[str, Any]) -> bool:
    return ours(int(endpoint["pid"])) and ready(str(endpoint["url"]))


def stop_pid(pid: int, command: str = "serve", grace: float = 20.0) -> bool:
    """SIGTERM (the server finishes its in-flight requests), wait, then SIGKILL; False if not ours."""
    if not ours(pid, command):
        _reap(pid)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not ours(pid, command):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
