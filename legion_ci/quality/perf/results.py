"""Locust's CSV output, read into typed results: totals per request name and the history over time."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
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
    """One row of locust_stats_history.csv (Aggregated): percentiles over Locust's recent window."""

    seconds: float  # since the first row
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    total_requests: int
    total_failures: int


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
