"""Locust, headless, as a subprocess: CSV stats (with history), Locust's own HTML report, a log."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from legion_ci.core.errors import StageError

SAMPLER = Path(__file__).with_name("sampler.py")  # loaded beside every locustfile: half-second samples
GRACE = 90.0  # seconds beyond the test's duration before Locust is stopped as hung
STOP_TIMEOUT = 2  # seconds running requests may finish in when the time is up


@dataclass(frozen=True)
class LocustRun:
    csv_prefix: Path
    html: Path
    log: Path
    exit_code: int
    seconds: float

    @property
    def stats_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_stats.csv")

    @property
    def history_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_stats_history.csv")

    @property
    def failures_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_failures.csv")

    @property
    def samples_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_samples.csv")  # written by sampler.py


def command(locustfile: Path, host: str, users: int, spawn_rate: float, duration: int, out_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        f"{locustfile},{SAMPLER}",
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "-t",
        f"{duration}s",
        "--stop-timeout",
        str(STOP_TIMEOUT),
        "--csv",
        str(out_dir / "locust"),
        "--html",
        str(out_dir / "locust.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "INFO",
    ]


def run_locust(
    locustfile: Path, host: str, users: int, spawn_rate: float, duration: int, out_dir: Path, env: dict[str, str]
) -> LocustRun:
    """Run Locust until `duration` is up; StageError when it cannot run the locustfile at all."""
    import time

    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "locust.log"
    for stale in out_dir.glob("locust*"):  # a rerun must not show the last attempt's numbers
        if stale.is_file() and stale.name != locustfile.name:
            stale.unlink()
    argv = command(locustfile, host, users, spawn_rate, duration, out_dir)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}  # no stray Locust settings
    started = time.monotonic()
    try:
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run(
                argv,
                cwd=out_dir,
                env={**clean, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=duration + GRACE,
            )
    except subprocess.TimeoutExpired:
        raise StageError("perf", f"Locust did not finish within {duration + GRACE:.0f}s (log {log})") from None
    run = LocustRun(out_dir / "locust", out_dir / "locust.html", log, done.returncode, time.monotonic() - started)
    if done.returncode != 0 or not run.stats_csv.is_file():
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-6:])
        raise StageError("perf", f"Locust could not run {locustfile} (exit {done.returncode}; log {log}):\n{tail}")
    return run
