"""The evidence of a rollout: each variant's captured predictions joined with their ground truth.

Reads a model's capture segments (legion_ci.feedback.capture: predictions and feedback records; the local
ones and those shipped to the shared store, the same segments `legion-ci feedback export` joins) and scores
every labelled row with the rollout's per-row metric, per version. The join is the export's own
(legion_ci.feedback.export.labelled_predictions): its order, its label checks (the newest *valid* ground truth
for a request id wins) and its ambiguity (a request id captured twice with different inputs, by any version,
is left out). A request answered by both variants (a shadow copy keeps the caller's request id) is scored for
each, with the one ground truth it got. A row whose score is not a finite number is unscorable: counted with
the mismatched ones, never scored. Latency is the server's own answer time of every captured prediction;
requests and errors come from the variants' /metrics (`errors_from_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from legion_ci.feedback.export import labelled_predictions


@dataclass
class Scores:
    """One variant's labelled rows and answer times since the rollout began."""

    version: str
    scores: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    hourly: dict[int, list[float]] = field(default_factory=dict)  # hour (unix ts // 3600) -> scores
    ambiguous: int = 0
    mismatched: int = 0  # ground truth left out: wrong length, a label the target cannot take, or unscorable

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
    if isinstance(v, (bool, int, float, str)):
        try:
            return float(v)
        except (ValueError, OverflowError):
            return None
    return None


def score(metric: str, predicted: Any, truth: Any) -> float | None:
    """One row's score; None when it cannot be scored (e.g. text for a regressor, or an error too large for a
    float: a non-finite score would make every mean and interval NaN)."""
    if metric in ("accuracy", "error_rate"):
        a, b = _number(predicted), _number(truth)
        same = (a == b) if a is not None and b is not None else str(predicted) == str(truth)
        return float(same) if metric == "accuracy" else float(not same)
    a, b = _number(predicted), _number(truth)
    if a is None or b is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.float64(a) - np.float64(b)
        found = float(abs(diff) if metric == "mae" else diff * diff)
    return found if math.isfinite(found) else None


def collect(paths: Iterable[Path], metric: str, versions: Iterable[str], since: float) -> dict[str, Scores]:
    """Scores per version (only those named) of predictions made at or after `since` (unix seconds), from
    these segment files (legion_ci.feedback.ship.all_segments: this host's and those shipped to the store)."""
    out = {v: Scores(v) for v in set(versions)}
    for found in labelled_predictions(paths, since):
        scores = out.get(found.version)
        if scores is None:
            continue
        latency = found.record.get("latency_ms")
        if isinstance(latency, (int, float)) and not isinstance(latency, bool) and math.isfinite(latency):
            scores.latencies_ms.append(float(latency))
        if found.left_out == "ambiguous":
            scores.ambiguous += 1
            continue
        if found.left_out is not None:
            scores.mismatched += 1
            continue
        if found.labels is None:
            continue
        outputs = found.record.get("outputs")
        answers = outputs if isinstance(outputs, list) else [outputs]
        rows = (
            [score(metric, p, t) for p, t in zip(answers, found.labels, strict=True)]
            if len(answers) == len(found.labels)
            else [None]
        )
        if any(r is None for r in rows):
            scores.mismatched += 1
            continue
        done = [float(r) for r in rows if r is not None]
        scores.scores.extend(done)
        scores.hourly.setdefault(int(found.ts // 3600), []).extend(done)
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
