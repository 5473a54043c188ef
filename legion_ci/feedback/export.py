"""The feedback loop's export: captured predictions joined with their ground truth, ready to retrain on.

Reads the capture store of a model ($LEGION_HOME/feedback/NAME/, see legion_ci/feedback/capture.py) and
writes one row per predicted row that has ground truth: the feature columns (the schema's names) and the
target column (the artifact's target name, "target" by default). A request of N rows takes ground truth
as a list of N values (or one value when N is 1); the latest feedback for a request id wins.

Request ids are chosen by callers, so two callers may send the same one. An id captured twice with
different inputs is ambiguous: its feedback cannot be told apart, so it is counted (`ambiguous`) and left
out. The same id with the same inputs (a retried request) is one prediction.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from legion_ci.core.errors import ConfigError, NotFoundError
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import read_store, store_dir

log = logging.getLogger(__name__)
FORMATS = (".csv", ".parquet")


@dataclass
class Joined:
    """The join of a store: rows ready to write and the counts of what could not be joined."""

    columns: list[str]
    target: str
    rows: list[list[Any]] = field(default_factory=list)
    predictions: int = 0
    feedback: int = 0
    unmatched_feedback: int = 0  # ground truth for a request id the store has no prediction for
    mismatched: int = 0  # ground truth whose length differs from the request's row count
    other_schema: int = 0  # predictions made by a version with other feature names
    ambiguous: int = 0  # ground truth for a request id captured more than once with different inputs


def join(folder: Path, since: datetime | None = None) -> Joined:
    """Join the predictions and feedback of one model's store (newest schema wins)."""
    predictions: dict[str, tuple[list[str], list[list[Any]]]] = {}
    ambiguous: set[str] = set()
    truth: dict[str, Any] = {}
    columns: list[str] = []
    target = "target"
    after = since.timestamp() if since else None
    for header, record in read_store(folder):
        kind = record.get("kind")
        if kind == "prediction":
            if after is not None and float(record.get("ts", 0)) < after:
                continue
            features = list(header.get("features") or [])
            request_id = str(record.get("request_id"))
            entry = (features, list(record.get("inputs") or []))
            earlier = predictions.get(request_id)
            if earlier is not None and earlier != entry:
                ambiguous.add(request_id)
            predictions[request_id] = entry
            if features:
                columns, target = features, str(header.get("target") or "target")
        elif kind == "feedback":
            truth[str(record.get("request_id"))] = record.get("ground_truth")
    out = Joined(columns, target, predictions=len(predictions), feedback=len(truth))
    for request_id, value in truth.items():
        if request_id in ambiguous:
            out.ambiguous += 1
            continue
        found = predictions.get(request_id)
        if found is None:
            out.unmatched_feedback += 1
            continue
        features, inputs = found
        if features != columns:
            out.other_schema += 1
            continue
        values = value if isinstance(value, list) else [value]
        if len(values) != len(inputs):
            out.mismatched += 1
            continue
        out.rows.extend([*row, v] for row, v in zip(inputs, values, strict=True))
    return out


def export_feedback(settings: Settings, model: str, since: datetime | None, out: Path) -> int:
    """Write the join for `model` to `out` (.csv or .parquet, atomically); returns the rows written."""
    import pandas as pd

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out: {str(out)!r} must end in .csv or .parquet")
    folder = store_dir(settings.feedback_dir, model)
    if not folder.is_dir():
        raise NotFoundError(
            f"no feedback store for model {model!r} (expected {folder}); "
            "serve it with capture on and post feedback first"
        )
    joined = join(folder, since)
    if joined.ambiguous:
        log.warning(
            "feedback export %s: %d request ids were captured more than once with different inputs; "
            "their ground truth is left out (callers must not share X-Request-IDs)",
            model,
            joined.ambiguous,
        )
    frame = (
        pd.DataFrame(joined.rows, columns=[*joined.columns, joined.target])
        if joined.columns
        else pd.DataFrame(columns=[joined.target])
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=suffix)
    os.close(fd)
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)
