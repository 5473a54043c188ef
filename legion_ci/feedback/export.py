"""The feedback loop's export: captured predictions joined with their ground truth, ready to retrain on.

Reads the capture store of a model ($LEGION_HOME/feedback/NAME/, see legion_ci/feedback/capture.py) and
writes one row per predicted row that has ground truth: the feature columns (the schema's names) and the
target column (the artifact's target name, "target" by default). A request of N rows takes ground truth
as a list of N values (or one value when N is 1). Records are ordered by their time (then server id, segment
name and line: a stable tie-break) across every segment of every server, and the newest *valid* ground truth for a
request id wins: a post with the wrong number of labels, or a label the target cannot take, never replaces
a good one. What is left out is counted per reason (REASONS) and reported.

Request ids are chosen by callers, so two callers may send the same one. An id captured twice with
different inputs is ambiguous: its feedback cannot be told apart, so it is counted (`ambiguous`) and left
out. The same id with the same inputs (a retried request, or a shadow copy) is one prediction per version.
`labelled_predictions` gives the same join per version (the rollout's evidence scores it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from legion_ci.core.errors import ConfigError, NotFoundError
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import read_segment, segments, store_dir
from legion_ci.feedback.labels import LabelError, Target, label_family
from legion_ci.feedback.ship import all_segments

log = logging.getLogger(__name__)
FORMATS = (".csv", ".parquet")


# (record time, server id, segment file name, line): a total, stable order across servers, whose segments may
# share a file name
Key = tuple[float, str, str, int]

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
    record: dict[str, Any]
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
        records = list(read_segment(path))  # one read: the header names the segment (as segment_key does)
        header: dict[str, Any] = records[0] if records and records[0].get("kind") == "segment" else {}
        key = (str(header.get("server") or ""), path.name)
        if key in seen:
            continue
        seen.add(key)
        for line, record in enumerate(records):
            if record.get("kind") == "segment":
                header = record
                continue
            try:
                ts = float(record.get("ts") or 0.0)
            except (TypeError, ValueError, OverflowError):
                ts = 0.0
            yield (ts if math.isfinite(ts) else 0.0, key[0], key[1], line), header, record


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
        kind = label_family(outputs[0])
        if all(label_family(o) == kind for o in outputs) and any(label_family(v) != kind for v in values):
            return "invalid_label"
    return None


def join(
    folder: Path, since: datetime | None = None, target: Target | None = None, more: Iterable[Path] = ()
) -> Joined:
    """Join the predictions and feedback of one model's store: its segments in `folder` and `more` (e.g.
    segments shipped to the shared store). Records are ordered by their time, then server id, segment name
    and line, whichever server wrote them; the newest schema wins, and for each request id the newest *valid*
    ground truth wins. `target` (the model being trained) checks labels; without it, each prediction's
    segment header says what its model took."""
    return join_segments([*segments(folder), *more], since, target)


@dataclass
class _Store:
    """What a store's segments hold: per request id, each version's newest prediction, and every post."""

    predictions: dict[str, dict[str, _Prediction]] = field(default_factory=dict)  # request id -> version -> it
    ambiguous: set[str] = field(default_factory=set)  # request ids captured with different inputs
    truth: dict[str, list[tuple[Key, Any]]] = field(default_factory=dict)  # request id -> (order key, label)


def _gather(paths: Iterable[Path], after: float | None) -> _Store:
    store = _Store()
    first: dict[str, tuple[list[str], list[Any]]] = {}  # request id -> (features, inputs) first captured
    per_segment: dict[tuple[str, str], tuple[list[str], Target]] = {}  # features and target, once per segment
    for key, header, record in _records(paths):
        kind = record.get("kind")
        request_id = str(record.get("request_id"))
        if kind == "prediction":
            if after is not None and key[0] < after:
                continue
            described = per_segment.get(key[1:3])
            if described is None:
                features = list(header.get("features") or [])
                described = features, Target.of(header.get("task"), header.get("classes"), header.get("target"))
                per_segment[key[1:3]] = described
            found = _Prediction(
                key,
                header,
                record,
                described[0],
                list(record.get("inputs") or []),
                record.get("outputs"),
                described[1],
            )
            seen = first.setdefault(request_id, (found.features, found.inputs))
            if seen != (found.features, found.inputs):
                store.ambiguous.add(request_id)
            version = str(record.get("version") or header.get("version") or "")
            by_version = store.predictions.setdefault(request_id, {})
            earlier = by_version.get(version)
            if earlier is None or key > earlier.key:
                by_version[version] = found
        elif kind == "feedback":
            store.truth.setdefault(request_id, []).append((key, record.get("ground_truth")))
    return store


def _choose(found: _Prediction, posts: list[tuple[Key, Any]], target: Target | None) -> tuple[Key, list[Any]] | str:
    """The newest post that labels the prediction's rows (its order key and one label per row), or the reason
    (a key of REASONS) the newest post was left out when none does."""
    reasons: list[str] = []
    for key, value in sorted(posts, key=lambda p: p[0], reverse=True):
        reason = _check(found, value, target)
        if reason is None:
            return key, value if isinstance(value, list) else [value]
        reasons.append(reason)
    return "mismatched" if reasons[0] == "mismatched" else "invalid_label"


def _after(since: datetime | float | None) -> float | None:
    return since.timestamp() if isinstance(since, datetime) else since


def join_segments(paths: Iterable[Path], since: datetime | None = None, target: Target | None = None) -> Joined:
    """`join` over an explicit list of segment files."""
    store = _gather(paths, _after(since))
    predictions = {rid: max(by.values(), key=lambda p: p.key) for rid, by in store.predictions.items()}
    newest = max((p for p in predictions.values() if p.features), key=lambda p: p.key, default=None)
    columns = newest.features if newest else []
    out = Joined(columns, str(newest.header.get("target") or "target") if newest else "target")
    out.predictions, out.feedback = len(predictions), len(store.truth)
    chosen: list[tuple[_Prediction, Key, list[Any]]] = []
    for request_id, posts in store.truth.items():
        if request_id in store.ambiguous:
            out.ambiguous += 1
            continue
        found = predictions.get(request_id)
        if found is None:
            out.unmatched_feedback += 1
            continue
        if found.features != columns:
            out.other_schema += 1
            continue
        picked = _choose(found, posts, target)
        if isinstance(picked, str):
            if picked == "mismatched":
                out.mismatched += 1
            else:
                out.invalid_label += 1
            continue
        key, values = picked
        out.bad_posts_skipped += sum(1 for k, _ in posts if k > key)
        chosen.append((found, key, values))
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
class Labelled:
    """One version's prediction of a request id, with the ground truth the export's join chose for it."""

    version: str
    header: dict[str, Any]  # its segment's header
    record: dict[str, Any]  # the prediction record as captured (a shadow copy says "shadow": true)
    ts: float  # the prediction's time (0 when its record has none that reads as a time)
    labels: list[Any] | None  # one per row: the newest valid ground truth; None when left out or never posted
    left_out: str | None = None  # why ground truth was posted but not used: a key of REASONS


def labelled_predictions(
    paths: Iterable[Path], since: datetime | float | None = None, target: Target | None = None
) -> Iterator[Labelled]:
    """Each version's newest prediction of every request id made at or after `since` (a datetime or unix
    seconds), in the export's order, with the ground truth the export would write for it: the newest valid
    post (checked by `target`, or by the prediction's segment header), none for a request id captured with
    different inputs (ambiguous, whichever version captured it). A request answered by two versions (a
    shadow copy keeps the caller's request id) is given once per version, with the same ground truth."""
    store = _gather(paths, _after(since))
    found = sorted(
        ((rid, version, p) for rid, by in store.predictions.items() for version, p in by.items()),
        key=lambda item: item[2].key,
    )
    for request_id, version, prediction in found:
        posts = store.truth.get(request_id)
        labels: list[Any] | None = None
        reason: str | None = None
        if posts is not None and request_id in store.ambiguous:
            reason = "ambiguous"
        elif posts is not None:
            picked = _choose(prediction, posts, target)
            if isinstance(picked, str):
                reason = picked
            else:
                labels = picked[1]
        yield Labelled(version, prediction.header, prediction.record, prediction.key[0], labels, reason)


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
