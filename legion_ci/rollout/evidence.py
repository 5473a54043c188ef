"""The evidence of a rollout: each variant's captured predictions joined with their ground truth.

Reads a model's capture segments (legion_ci.feedback.capture: predictions and feedback records; the local
ones and those shipped to the shared store, the same segments `legion-ci feedback export` joins) and scores
every labelled row with the rollout's per-row metric, per version. Predictions are keyed by (version,
request id): a request answered by both variants (a shadow copy) is scored for each, with the one ground
truth it got. As in the export (legion_ci.feedback.export), the newest *valid* ground truth for a request
id wins (a post with the wrong number of labels, or labels that cannot be scored, never replaces a good
one), and a request id captured twice by one version with different inputs is ambiguous and left out.
Latency is the server's own answer time of every captured prediction; requests and errors come from the
variants' /metrics (`errors_from_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from legion_ci.feedback.capture import read_segment


@dataclass
class Scores:
    """One variant's labelled rows and answer times since the rollout began."""

    version: str
    scores: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    hourly: dict[int, list[float]] = field(default_factory=dict)  # hour (unix ts // 3600) -> scores
    ambiguous: int = 0
    mismatched: int = 0  # ground truth whose length differs from the request's rows

    @property
    def labelled(self) -> int:
        return len(self.scores)

    def mean_var(self) -> tuple[float | None, float | None]:
        if not self.scores:
            return None, None
        arr = np.asarray(self.scores, dtype=np.float64)
        return float(arr.mean()), float(arr.var())

    def p99_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def score(metric: str, predicted: Any, truth: Any) -> float | None:
    """One row's score; None when the ground truth cannot be scored (e.g. text for a regressor)."""
    if metric in ("accuracy", "error_rate"):
        a, b = _number(predicted), _number(truth)
        same = (a == b) if a is not None and b is not None else str(predicted) == str(truth)
        return float(same) if metric == "accuracy" else float(not same)
    a, b = _number(predicted), _number(truth)
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b):
        return None
    return abs(a - b) if metric == "mae" else (a - b) ** 2


def _newest_valid(metric: str, posts: list[tuple[float, Any]], answers: list[Any], n: int) -> list[float] | None:
    """The rows' scores under the newest ground truth that labels every row and can be scored."""
    for _, value in sorted(posts, key=lambda p: p[0], reverse=True):
        values = value if isinstance(value, list) else [value]
        if len(values) != n or len(answers) != n:
            continue
        found = [score(metric, predicted, actual) for predicted, actual in zip(answers, values, strict=True)]
        if all(x is not None for x in found):
            return [float(x) for x in found if x is not None]
    return None


def collect(paths: Iterable[Path], metric: str, versions: Iterable[str], since: float) -> dict[str, Scores]:
    """Scores per version (only those named) of predictions made at or after `since` (unix seconds), from
    these segment files (legion_ci.feedback.ship.all_segments: this host's and those shipped to the store)."""
    wanted = set(versions)
    out = {v: Scores(v) for v in wanted}
    predictions: dict[tuple[str, str], tuple[list[Any], Any, float]] = {}
    ambiguous: set[tuple[str, str]] = set()
    truth: dict[str, list[tuple[float, Any]]] = {}
    records = (record for path in paths for record in read_segment(path) if record.get("kind") != "segment")
    for record in records:
        kind = record.get("kind")
        if kind == "prediction":
            version = str(record.get("version"))
            ts = float(record.get("ts") or 0)
            if version not in wanted or ts < since:
                continue
            key = (version, str(record.get("request_id")))
            entry = (list(record.get("inputs") or []), record.get("outputs"), ts)
            earlier = predictions.get(key)
            if earlier is not None and earlier[:2] != entry[:2]:
                ambiguous.add(key)
            elif earlier is None:
                latency = record.get("latency_ms")
                if isinstance(latency, (int, float)):
                    out[version].latencies_ms.append(float(latency))
            predictions[key] = entry
        elif kind == "feedback":
            when = record.get("ts")
            stamp = float(when) if isinstance(when, (int, float)) else 0.0
            truth.setdefault(str(record.get("request_id")), []).append((stamp, record.get("ground_truth")))
    for (version, request_id), (inputs, outputs, ts) in predictions.items():
        if request_id not in truth:
            continue
        scores = out[version]
        if (version, request_id) in ambiguous:
            scores.ambiguous += 1
            continue
        answers = outputs if isinstance(outputs, list) else [outputs]
        rows = _newest_valid(metric, truth[request_id], answers, len(inputs))
        if rows is None:
            scores.mismatched += 1
            continue
        scores.scores.extend(rows)
        scores.hourly.setdefault(int(ts // 3600), []).extend(rows)
    return out


def errors_from_metrics(text: str) -> tuple[int, int]:
    """(invokes answered, of which 5xx) from a model server's Prometheus text (legion_requests_total)."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = 0
    for family in text_string_to_metric_families(text):
        if family.name not in ("legion_requests", "legion_requests_total"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.labels.get("endpoint") not in ("invoke", "infer"):
                continue
            n = int(sample.value)
            requests += n
            if str(sample.labels.get("status", "")).startswith("5"):
                errors += n
    return requests, errors
