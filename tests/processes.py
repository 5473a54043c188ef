"""Start a `legion-ci` server command for a test and wait until it says where it listens and is ready."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def launch(
    args: list[str], env: dict[str, str], what: str, timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """`python -m legion_ci ARGS`; returns the process, the URL from its `listening on URL` line and the
    list its output keeps streaming into, once GET URL/health/ready answers 200."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "legion_ci", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    url = None
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            proc.wait(timeout=5)
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n" + "\n".join(seen))
        if line.startswith("listening on "):
            url = line.split()[-1].strip()
    while url is not None and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n" + "\n".join(seen))
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return proc, url, seen
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s:\n" + "\n".join(seen))
