"""The per-model lock: one pipeline at a time touches a model's deployments."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from legion_ci.core.errors import LockedError
from legion_ci.core.registry import Registry


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    return Path(f"/proc/{pid}").exists()


@contextmanager
def model_lock(registry: Registry, model: str, owner: str, wait: float = 0.0) -> Iterator[None]:
    """Hold `model`'s lock for `owner` (re-entrant for the same owner); clears locks of dead processes
    on this host; waits up to `wait` seconds, then raises LockedError naming the holder."""
    name, host, pid = f"model:{model}", socket.gethostname(), os.getpid()
    deadline = time.monotonic() + wait
    taken_here = False
    while True:
        holder = registry.try_lock(name, owner, host, pid)
        if holder is None:
            taken_here = True
            break
        if holder["owner"] == owner:
            break  # our own run holds it already (a stage inside `run`)
        if holder.get("host") == host and not _pid_alive(holder.get("pid")):
            registry.release_lock(name, holder["owner"])  # stale: its process is gone
            continue
        if time.monotonic() >= deadline:
            raise LockedError(
                f"model {model!r} is locked by run {holder['owner']!r} (pid {holder.get('pid')} on "
                f"{holder.get('host')}, since {holder.get('acquired_at')}); wait for it, or pass --wait SECONDS"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        if taken_here:
            registry.release_lock(name, owner)
