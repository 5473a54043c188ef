"""Locust's CSV output, read into typed results: totals per request name and the history over time."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from legion_ci.core.errors import StageError


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def _count(text: str | None) -> int:
    value = _number(text)
    return 0 if math.isnan(value) else int(value)


@dataclass(frozen=True)
class RequestStats:
    """One row of locust_stats.csv: a request name, or "Aggregated" for all of them."""

    name: str
    requests: int
    failures: int
    median_ms: float
    average_ms: float
    min_ms: float
    max_ms: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()} | {
            "error_rate": self.error_rate
        }


@dataclass(frozen=True)
class HistoryPoint:
    """A point of the run over time: a bin of sampler.py's locust_samples.csv (requests answered in that half
    second), or a row of Locust's locust_stats_history.csv (Aggregated: a trailing 10-second window)."""

    seconds: float  # since the start: where the bin begins (a Locust history row: its time)
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    total_requests: int
    total_failures: int
    width: float = 1.0  # seconds the point covers


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise StageError("perf", f"cannot read Locust's output {path}: {exc.strerror}") from None


def read_stats(path: Path) -> tuple[RequestStats, list[RequestStats]]:
    """The aggregated row and the per-request rows of locust_stats.csv."""
    rows = []
    for row in _rows(path):
        rows.append(
            RequestStats(
                name=row.get("Name", "?"),
                requests=_count(row.get("Request Count")),
                failures=_count(row.get("Failure Count")),
                median_ms=_number(row.get("Median Response Time")),
                average_ms=_number(row.get("Average Response Time")),
                min_ms=_number(row.get("Min Response Time")),
                max_ms=_number(row.get("Max Response Time")),
                rps=_number(row.get("Requests/s")),
                p50_ms=_number(row.get("50%")),
                p95_ms=_number(row.get("95%")),
                p99_ms=_number(row.get("99%")),
            )
        )
    total = next((r for r in rows if r.name == "Aggregated"), None)
    if total is None:
        raise StageError("perf", f"{path}: Locust wrote no Aggregated row")
    return total, [r for r in rows if r.name != "Aggregated"]


def read_history(path: Path) -> list[HistoryPoint]:
    """The Aggregated rows of locust_stats_history.csv, one per second of the run (empty if none)."""
    if not path.is_file():
        return []
    points: list[HistoryPoint] = []
    start: float | None = None
    for row in _rows(path):
        if row.get("Name") != "Aggregated":
            continue
        stamp = _number(row.get("Timestamp"))
        start = stamp if start is None else start
        points.append(
            HistoryPoint(
                seconds=stamp - start,
                users=_count(row.get("User Count")),
                rps=_number(row.get("Requests/s")),
                failures_per_s=_number(row.get("Failures/s")),
                p50_ms=_number(row.get("50%")),
                p95_ms=_number(row.get("95%")),
                p99_ms=_number(row.get("99%")),
                total_requests=_count(row.get("Total Request Count")),
                total_failures=_count(row.get("Total Failure Count")),
            )
        )
    return points


def read_samples(path: Path) -> list[HistoryPoint]:
    """sampler.py's half-second bins (empty when Locust wrote none): rates and percentiles of each bin alone."""
    if not path.is_file():
        return []
    points: list[HistoryPoint] = []
    requests = failures = 0
    for row in _rows(path):
        width = _number(row.get("width"))
        if math.isnan(width) or width <= 0:
            continue
        n, failed = _count(row.get("requests")), _count(row.get("failures"))
        requests, failures = requests + n, failures + failed
        points.append(
            HistoryPoint(
                seconds=_number(row.get("seconds")),
                users=_count(row.get("users")),
                rps=n / width,
                failures_per_s=failed / width,
                p50_ms=_number(row.get("p50_ms")),
                p95_ms=_number(row.get("p95_ms")),
                p99_ms=_number(row.get("p99_ms")),
                total_requests=requests,
                total_failures=failures,
                width=width,
            )
        )
    return points


def mean_rps(samples: list[HistoryPoint]) -> float:
    """Requests answered over the time the samples cover: the mean of the plotted rates, weighted by width."""
    span = sum(p.width for p in samples)
    return samples[-1].total_requests / span if samples and span > 0 else math.nan


def with_sampled_rate(total: RequestStats, samples: list[HistoryPoint]) -> RequestStats:
    """Locust's totals with the throughput taken from the samples, so that the headline, the SLA check and the
    plot are one number (Locust's own counts the time from its start to the last request in whole seconds)."""
    rate = mean_rps(samples)
    return total if math.isnan(rate) else replace(total, rps=rate)


def read_failures(path: Path, limit: int = 20) -> list[dict[str, str]]:
    """The distinct failures Locust saw (method, name, error, occurrences)."""
    if not path.is_file():
        return []
    return [
        {
            "method": r.get("Method", ""),
            "name": r.get("Name", ""),
            "error": r.get("Error", ""),
            "occurrences": r.get("Occurrences", ""),
        }
        for r in _rows(path)[:limit]
    ]


BIN_SECONDS = 0.5  # how often the sampler (sampler.py, in Locust's process) cuts the run
SAMPLE_COLUMNS = ("seconds", "width", "users", "requests", "failures", "p50_ms", "p95_ms", "p99_ms")


class Sampler:
    """Requests per bin: counts, failures, the users running and every response time (for percentiles)."""

    def __init__(self, bin_seconds: float = BIN_SECONDS) -> None:
        self.bin_seconds = bin_seconds
        self.start: float | None = None
        self.last: float | None = None
        self.bins: dict[int, list[float]] = {}
        self.failures: dict[int, int] = {}
        self.users: dict[int, int] = {}

    def begin(self, now: float) -> None:
        self.start = now

    def record(self, now: float, response_ms: float, failed: bool, users: int) -> None:
        if self.start is None:
            self.start = now
        index = max(0, int((now - self.start) / self.bin_seconds))
        self.bins.setdefault(index, []).append(response_ms)
        if failed:
            self.failures[index] = self.failures.get(index, 0) + 1
        self.users[index] = max(self.users.get(index, 0), users)
        self.last = now if self.last is None else max(self.last, now)

    def rows(self) -> list[dict[str, Any]]:
        """One row per bin from the start to the last answer; the last bin is as wide as the time it covers."""
        if self.start is None or self.last is None:
            return []
        span = self.last - self.start
        count = max(1, math.ceil(span / self.bin_seconds - 1e-9))
        times: dict[int, list[float]] = {}
        failures: dict[int, int] = {}
        for index, ts in self.bins.items():  # an answer exactly at the end belongs to the last bin
            times.setdefault(min(index, count - 1), []).extend(ts)
        for index, n in self.failures.items():
            failures[min(index, count - 1)] = failures.get(min(index, count - 1), 0) + n
        out, users = [], 0
        for index in range(count):
            ordered = sorted(times.get(index, []))
            begin = index * self.bin_seconds
            width = span - begin if index == count - 1 else self.bin_seconds
            users = self.users.get(index, users)
            out.append(
                {
                    "seconds": round(begin, 3),
                    "width": round(max(width, 1e-3), 6),
                    "users": users,
                    "requests": len(ordered),
                    "failures": failures.get(index, 0),
                    "p50_ms": _percentile(ordered, 0.50),
                    "p95_ms": _percentile(ordered, 0.95),
                    "p99_ms": _percentile(ordered, 0.99),
                }
            )
        return out

    def write(self, path: str) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, SAMPLE_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows())


def _percentile(sorted_times: list[float], q: float) -> str:
    """Nearest-rank percentile, as text ('' for an empty bin)."""
    if not sorted_times:
        return ""
    rank = max(1, math.ceil(q * len(sorted_times)))
    return f"{sorted_times[rank - 1]:.3f}"
