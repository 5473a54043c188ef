"""The feedback loop's export: captured predictions joined with their ground truth, ready to retrain on.

Reads the capture store of a model ($LEGION_HOME/feedback/NAME/, see legion_ci/feedback/capture.py) and
writes one row per predicted row that has ground truth: the feature columns (the schema's names) and the
target column (the artifact's target name, "target" by default). A request of N rows takes ground truth
as a list of N values (or one value when N is 1). Records are ordered by their time (then segment name and
line: a stable tie-break) across every segment of every server, and the newest *valid* ground truth for a
request id wins: a post with the wrong number of labels, or a label the target cannot take, never replaces
a good one. What is left out is counted per reason (REASONS) and reported.

Request ids are chosen by callers, so two callers may send the same one. An id captured twice with
different inputs is ambiguous: its feedback cannot be told apart, so it is counted (`ambiguous`) and left
out. The same id with the same inputs (a retried request) is one prediction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from legion_ci.core.errors import ConfigError, NotFoundError
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import read_segment, segment_key, segments, store_dir
from legion_ci.feedback.labels import LabelError, Target
from legion_ci.feedback.ship import all_segments

log = logging.getLogger(__name__)
FORMATS = (".csv", ".parquet")


Key = tuple[float, str, int]  # (record time, segment file name, line): a total, stable order across servers

REASONS = {
    "unmatched": "no prediction with that request id in the store",
    "ambiguous": "request id captured more than once with different inputs",
    "other_schema": "predicted by a version with other feature names",
    "mismatched": "number of labels differs from the request's row count",
    "invalid_label": "label the model's target cannot take",
}


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
    invalid_label: int = 0  # ground truth the target cannot take (a class the model lacks, text for a number)
    bad_posts_skipped: int = 0  # invalid posts for a request id that also has a valid (earlier) one, which is used
    requests: int = 0  # request ids whose rows were written
    first_prediction: float | None = None  # time range of the predictions written
    last_prediction: float | None = None
    last_feedback: float | None = None  # the newest ground truth written
    label_times: list[float] = field(default_factory=list)  # time of the ground truth used, per request

    def left_out(self) -> dict[str, int]:
        """Request ids whose ground truth was left out, per reason (the keys of REASONS), zeros omitted."""
        counts = {
            "unmatched": self.unmatched_feedback,
            "ambiguous": self.ambiguous,
            "other_schema": self.other_schema,
            "mismatched": self.mismatched,
            "invalid_label": self.invalid_label,
        }
        return {k: v for k, v in counts.items() if v}


@dataclass(slots=True)
class _Prediction:
    key: Key
    header: dict[str, Any]
    features: list[str]
    inputs: list[list[Any]]
    outputs: Any
    target: Target  # what the segment's model took (unknown for segments written before headers said)


def _records(paths: Iterable[Path]) -> Iterator[tuple[Key, dict[str, Any], dict[str, Any]]]:
    """(order key, segment header, record) of every record of these segments; a segment seen twice (a local
    segment that was also shipped to the store: the same server id and file name) is read once, while two
    servers' segments that happen to share a file name are both read."""
    seen: set[tuple[str, str]] = set()
    for path in paths:
        key = segment_key(path)
        if key in seen:
            continue
        seen.add(key)
        header: dict[str, Any] = {}
        for line, record in enumerate(read_segment(path)):
            if record.get("kind") == "segment":
                header = record
                continue
            try:
                ts = float(record.get("ts") or 0.0)
            except (TypeError, ValueError):
                ts = 0.0
            yield (ts, path.name, line), header, record


def _family(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else type(value).__name__


def _check(found: _Prediction, value: Any, target: Target | None) -> str | None:
    """None when `value` labels the prediction's rows, else the reason (a key of REASONS) it is left out."""
    target = target or found.target
    values = value if isinstance(value, list) else [value]
    if len(values) != len(found.inputs):
        return "mismatched"
    try:
        for one in values:
            target.check(one)
    except LabelError:
        return "invalid_label"
    outputs = found.outputs
    if not target.known and isinstance(outputs, list) and outputs:
        # a segment written before headers named the task: labels must be of the kind of the outputs
        kind = _family(outputs[0])
        if all(_family(o) == kind for o in outputs) and any(_family(v) != kind for v in values):
            return "invalid_label"
    return None


def join(
    folder: Path, since: datetime | None = None, target: Target | None = None, more: Iterable[Path] = ()
) -> Joined:
    """Join the predictions and feedback of one model's store: its segments in `folder` and `more` (e.g.
    segments shipped to the shared store). Records are ordered by their time, then segment name and line,
    whichever server wrote them; the newest schema wins, and for each request id the newest *valid* ground
    truth wins. `target` (the model being trained) checks labels; without it, each prediction's segment
    header says what its model took."""
    return join_segments([*segments(folder), *more], since, target)


def join_segments(paths: Iterable[Path], since: datetime | None = None, target: Target | None = None) -> Joined:
    """`join` over an explicit list of segment files."""
    predictions: dict[str, _Prediction] = {}
    ambiguous: set[str] = set()
    truth: dict[str, list[tuple[Key, Any]]] = {}
    after = since.timestamp() if since else None
    per_segment: dict[str, tuple[list[str], Target]] = {}  # features and target, once per segment
    for key, header, record in _records(paths):
        kind = record.get("kind")
        request_id = str(record.get("request_id"))
        if kind == "prediction":
            if after is not None and key[0] < after:
                continue
            described = per_segment.get(key[1])
            if described is None:
                features = list(header.get("features") or [])
                described = features, Target.of(header.get("task"), header.get("classes"), header.get("target"))
                per_segment[key[1]] = described
            found = _Prediction(
                key, header, described[0], list(record.get("inputs") or []), record.get("outputs"), described[1]
            )
            earlier = predictions.get(request_id)
            if earlier is not None and (earlier.features, earlier.inputs) != (found.features, found.inputs):
                ambiguous.add(request_id)
            if earlier is None or key > earlier.key:
                predictions[request_id] = found
        elif kind == "feedback":
            truth.setdefault(request_id, []).append((key, record.get("ground_truth")))
    newest = max((p for p in predictions.values() if p.features), key=lambda p: p.key, default=None)
    columns = newest.features if newest else []
    out = Joined(columns, str(newest.header.get("target") or "target") if newest else "target")
    out.predictions, out.feedback = len(predictions), len(truth)
    chosen: list[tuple[_Prediction, Key, list[Any]]] = []
    for request_id, posts in truth.items():
        if request_id in ambiguous:
            out.ambiguous += 1
            continue
        match = predictions.get(request_id)
        if match is None:
            out.unmatched_feedback += 1
            continue
        found = match
        if found.features != columns:
            out.other_schema += 1
            continue
        reasons: list[str] = []
        for key, value in sorted(posts, key=lambda p: p[0], reverse=True):
            reason = _check(found, value, target)
            if reason is None:
                out.bad_posts_skipped += len(reasons)
                chosen.append((found, key, value if isinstance(value, list) else [value]))
                break
            reasons.append(reason)
        else:
            if reasons[0] == "mismatched":
                out.mismatched += 1
            else:
                out.invalid_label += 1
    chosen.sort(key=lambda c: c[0].key)  # rows in prediction order: the same store gives the same file
    for found, _key, values in chosen:
        out.rows.extend([*row, v] for row, v in zip(found.inputs, values, strict=True))
    out.requests = len(chosen)
    if chosen:
        out.first_prediction, out.last_prediction = chosen[0][0].key[0], chosen[-1][0].key[0]
        out.label_times = [key[0] for _, key, _ in chosen]
        out.last_feedback = max(out.label_times)
    return out


@dataclass(frozen=True)
class Exported:
    """What an export wrote: rows, the requests they came from, what was left out and why, and the rows'
    fingerprint and time range (the lineage of a retrain records them)."""

    path: Path
    rows: int
    requests: int
    left_out: dict[str, int]
    bad_posts_skipped: int
    fingerprint: str
    first_prediction: float | None
    last_prediction: float | None
    last_feedback: float | None
    label_times: tuple[float, ...] = ()

    def labelled_after(self, when: float | None) -> int:
        """Requests whose ground truth used here is newer than `when` (all of them when None)."""
        return len(self.label_times) if when is None else sum(1 for t in self.label_times if t > when)

    def summary(self) -> str:
        text = f"wrote {self.rows} rows ({self.requests} labelled requests) to {self.path}"
        if self.left_out:
            parts = [f"{n} {reason} ({REASONS[reason]})" for reason, n in self.left_out.items()]
            text += "; left out: " + ", ".join(parts)
        else:
            text += "; left out: none"
        if self.bad_posts_skipped:
            text += f"; {self.bad_posts_skipped} invalid later post(s) ignored in favour of a valid earlier one"
        return text


def export_feedback(
    settings: Settings, model: str, since: datetime | None, out: Path, target: Target | None = None
) -> Exported:
    """Write the join for `model` to `out` (.csv or .parquet, atomically); returns what was written and
    what was left out. `target` (the model being retrained) checks the labels; see `join`."""
    import pandas as pd

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out: {str(out)!r} must end in .csv or .parquet")
    folder = store_dir(settings.feedback_dir, model)
    files = all_segments(settings, model)  # local and shipped to the store, each segment once
    if not files and not folder.is_dir():
        raise NotFoundError(
            f"no feedback store for model {model!r} (expected {folder}, or segments shipped to the store); "
            "serve it with capture on and post feedback first"
        )
    joined = join_segments(files, since, target)
    if joined.ambiguous:
        log.warning(
            "feedback export %s: %d request ids were captured more than once with different inputs; "
            "their ground truth is left out (callers must not share X-Request-IDs)",
            model,
            joined.ambiguous,
        )
    if joined.invalid_label:
        log.warning(
            "feedback export %s: %d request ids have only labels the target cannot take; left out",
            model,
            joined.invalid_label,
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
    return Exported(
        path=out,
        rows=len(frame),
        requests=joined.requests,
        left_out=joined.left_out(),
        bad_posts_skipped=joined.bad_posts_skipped,
        fingerprint=hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest(),
        first_prediction=joined.first_prediction,
        last_prediction=joined.last_prediction,
        last_feedback=joined.last_feedback,
        label_times=tuple(joined.label_times),
    )
