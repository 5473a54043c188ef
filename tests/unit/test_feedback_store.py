"""The capture store and its export: records survive as written, torn lines are skipped, joins are right."""

from __future__ import annotations

import asyncio
import fcntl
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from legion_ci.core.errors import ConfigError, NotFoundError
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import CaptureWriter, find_prediction, read_store, segments
from legion_ci.feedback.export import export_feedback, join, join_segments


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, registry_url="sqlite://")


def writer(settings: Settings, version: str = "1.0.0", features: list[str] | None = None) -> CaptureWriter:
    return CaptureWriter(
        settings.feedback_dir / "iris", "iris", version, features or ["a", "b"], "species", fsync_interval=0.05
    )


def test_records_are_readable_and_torn_lines_skipped(settings: Settings) -> None:
    w = writer(settings)
    assert w.prediction("r1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    assert w.feedback("r1", 0, {"by": "me"}, True)
    w.close()
    path = segments(settings.feedback_dir / "iris")[0]
    with path.open("ab") as fh:
        fh.write(b'{"kind":"prediction","request_id":"torn","inp')  # a write cut short by a crash
    kinds = [(h["version"], r["kind"], r["request_id"]) for h, r in read_store(settings.feedback_dir / "iris")]
    assert kinds == [("1.0.0", "prediction", "r1"), ("1.0.0", "feedback", "r1")]
    assert find_prediction(settings.feedback_dir / "iris", "r1")
    assert not find_prediction(settings.feedback_dir / "iris", "torn")


def test_join_matches_rows_and_counts_what_it_cannot(settings: Settings) -> None:
    w = writer(settings)
    w.prediction("one", [[1.0, 2.0]], ["setosa"], None, 0.1, 100.0)
    w.prediction("two", [[3.0, 4.0], [5.0, 6.0]], ["versicolor", "versicolor"], None, 0.1, 200.0)
    w.prediction("bad-len", [[7.0, 8.0]], ["versicolor"], None, 0.1, 300.0)
    w.feedback("one", "setosa", None, True)
    w.feedback("two", ["versicolor", "virginica"], None, True)
    w.feedback("bad-len", ["a", "b"], None, True)
    w.feedback("ghost", "x", None, False)
    w.feedback("one", "virginica", None, True)  # the latest ground truth wins
    w.close()
    out = join(settings.feedback_dir / "iris")
    assert out.columns == ["a", "b"] and out.target == "species"
    assert sorted(out.rows) == [[1.0, 2.0, "virginica"], [3.0, 4.0, "versicolor"], [5.0, 6.0, "virginica"]]
    assert (out.unmatched_feedback, out.mismatched) == (1, 1)
    since = datetime.fromtimestamp(150.0, tz=UTC)
    assert sorted(join(settings.feedback_dir / "iris", since).rows) == [
        [3.0, 4.0, "versicolor"],
        [5.0, 6.0, "virginica"],
    ]


def test_export_csv_and_parquet(settings: Settings, tmp_path: Path) -> None:
    w = writer(settings)
    w.prediction("one", [[1.0, 2.0]], [0], None, 0.1, 100.0)
    w.feedback("one", 2, None, True)
    w.close()
    assert export_feedback(settings, "iris", None, tmp_path / "out" / "fb.csv").rows == 1
    assert pd.read_csv(tmp_path / "out" / "fb.csv").to_dict("records") == [{"a": 1.0, "b": 2.0, "species": 2}]
    assert export_feedback(settings, "iris", None, tmp_path / "fb.parquet").rows == 1
    assert list(pd.read_parquet(tmp_path / "fb.parquet").columns) == ["a", "b", "species"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert export_feedback(settings, "iris", future, tmp_path / "none.csv").rows == 0
    with pytest.raises(ConfigError, match=r"must end in \.csv or \.parquet"):
        export_feedback(settings, "iris", None, tmp_path / "fb.txt")
    with pytest.raises(NotFoundError, match="no feedback store for model 'mnist'"):
        export_feedback(settings, "mnist", None, tmp_path / "m.csv")
    assert not list(tmp_path.glob(".fb*"))


def test_sampling_rate(settings: Settings) -> None:
    w = CaptureWriter(settings.feedback_dir / "iris", "iris", "1", ["a"], "t", rate=0.25)
    share = sum(w.sampled() for _ in range(4000)) / 4000
    w.close()
    assert 0.15 < share < 0.35


def test_open_segments_rotate_and_read_while_written(settings: Settings) -> None:
    folder = settings.feedback_dir / "iris"
    w = CaptureWriter(folder, "iris", "1", ["a", "b"], "t", fsync_interval=60, segment_bytes=4096)
    for i in range(100):
        assert w.prediction(f"r{i}", [[float(i), 1.0]], [i % 3], None, 0.1, float(i))
    open_size = segments(folder)[-1].stat().st_size
    assert open_size == 4096  # preallocated; the unused tail is zeros until the segment closes
    ids = [r["request_id"] for _, r in read_store(folder) if r["kind"] == "prediction"]
    assert ids == [f"r{i}" for i in range(100)]  # read while the last segment is still open
    assert len(segments(folder)) > 3
    assert find_prediction(folder, "r99") and not find_prediction(folder, "r100")
    w.close()
    assert segments(folder)[-1].stat().st_size < 4096  # truncated to its data on close
    assert len([r for _, r in read_store(folder) if r["kind"] == "prediction"]) == 100


def test_a_record_larger_than_a_segment_is_refused_not_fatal(settings: Settings) -> None:
    w = CaptureWriter(settings.feedback_dir / "iris", "iris", "1", ["a"], "t", segment_bytes=4096)
    assert not w.prediction("big", [[1.0]] * 2000, [0] * 2000, None, 0.1, 1.0)
    assert w.errors == 1 and w.prediction("small", [[1.0]], [0], None, 0.1, 1.0)
    w.close()


def test_a_request_id_captured_twice_with_different_inputs_is_left_out(settings: Settings) -> None:
    w = writer(settings)
    w.prediction("shared", [[1.0, 2.0]], ["setosa"], None, 0.1, 100.0)  # caller A
    w.prediction("retried", [[3.0, 4.0]], ["versicolor"], None, 0.1, 100.0)
    w.prediction("retried", [[3.0, 4.0]], ["versicolor"], None, 0.1, 101.0)  # the same request again: one prediction
    w.close()
    other = writer(settings)  # another server process, caller B reusing A's id
    other.prediction("shared", [[9.0, 9.0]], ["versicolor"], None, 0.1, 200.0)
    other.feedback("shared", "setosa", None, True)
    other.feedback("retried", "virginica", None, True)
    other.close()
    out = join(settings.feedback_dir / "iris")
    assert out.rows == [[3.0, 4.0, "virginica"]]
    assert out.ambiguous == 1


def _segment(folder: Path, name: str, header: dict[str, Any], *records: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [orjson.dumps({"kind": "segment", **header}), *(orjson.dumps(r) for r in records)]
    (folder / name).write_bytes(b"\n".join(lines) + b"\n")


HEADER = {"model": "iris", "version": "1.0.0", "features": ["a", "b"], "target": "species"}


def _pred(rid: str, ts: float, rows: int = 1, outputs: Any = None) -> dict[str, Any]:
    inputs = [[float(i), 1.0] for i in range(rows)]
    return {"kind": "prediction", "request_id": rid, "ts": ts, "inputs": inputs, "outputs": outputs or [0] * rows}


def _fb(rid: str, ts: float, truth: Any) -> dict[str, Any]:
    return {"kind": "feedback", "request_id": rid, "ts": ts, "ground_truth": truth}


def test_the_latest_feedback_wins_across_replicas_whatever_the_segment_names(settings: Settings) -> None:
    folder = settings.feedback_dir / "iris"
    # Replica B opened its segment first (its name sorts first) but got the *later* correction.
    _segment(folder, "seg-20260101T000001-2-000000001.jsonl", HEADER, _pred("r1", 100.0), _fb("r1", 300.0, 2))
    _segment(folder, "seg-20260101T000002-1-000000001.jsonl", HEADER, _fb("r1", 200.0, 1))
    assert join(folder).rows == [[0.0, 1.0, 2]]
    # Same time on two replicas: the tie is broken by segment name, then line, so every export agrees.
    _segment(folder, "seg-20260101T000003-3-000000001.jsonl", HEADER, _fb("r1", 300.0, 0))
    assert join(folder).rows == [[0.0, 1.0, 0]]
    assert join(folder, more=list(reversed(segments(folder)))).rows == [[0.0, 1.0, 0]]  # read order is irrelevant


def test_invalid_labels_are_left_out_and_never_replace_a_good_one(settings: Settings, tmp_path: Path) -> None:
    folder = settings.feedback_dir / "iris"
    header = {**HEADER, "task": "classification", "classes": [0, 1, 2]}
    _segment(
        folder,
        "seg-20260101T000001-1-000000001.jsonl",
        header,
        _pred("good", 1.0),
        _pred("bad", 2.0),
        _pred("fixed-later", 3.0),
        _pred("ten", 4.0, rows=10),
        _fb("good", 10.0, 1),
        _fb("good", 11.0, "class_7"),  # a bad post after a good one: the good one stays
        _fb("bad", 12.0, "class_7"),  # stored before the endpoint checked labels
        _fb("fixed-later", 13.0, True),
        _fb("fixed-later", 14.0, 2),
        _fb("ten", 15.0, list(range(3)) * 3 + [0]),
        _fb("ten", 16.0, [1, 2]),  # two labels for ten rows, after the right ten
        _fb("ghost", 17.0, 1),
    )
    _segment(folder, "seg-20260101T000002-2-000000001.jsonl", header, _pred("short", 5.0, 3), _fb("short", 18.0, [0]))
    out = join(folder)
    assert out.rows[:3] == [[0.0, 1.0, 1], [0.0, 1.0, 2], [0.0, 1.0, 0]]
    assert len(out.rows) == 12 and out.requests == 3
    assert out.left_out() == {"unmatched": 1, "mismatched": 1, "invalid_label": 1}
    assert out.bad_posts_skipped == 2
    done = export_feedback(settings, "iris", None, tmp_path / "fb.csv")
    assert done.rows == 12
    assert "left out: 1 unmatched (no prediction" in done.summary()
    assert "1 mismatched (number of labels differs" in done.summary()
    assert "1 invalid_label (label the model's target cannot take)" in done.summary()
    # What the export wrote trains: the target column holds only the model's classes.
    frame = pd.read_csv(tmp_path / "fb.csv")
    assert frame["species"].dtype.kind == "i" and set(frame["species"]) <= {0, 1, 2}


def test_labels_of_segments_written_before_headers_named_the_task_must_look_like_the_outputs(
    settings: Settings,
) -> None:
    folder = settings.feedback_dir / "iris"
    _segment(
        folder,
        "seg-20260101T000001-1-000000001.jsonl",
        HEADER,
        _pred("a", 1.0),
        _pred("b", 2.0),
        _pred("c", 3.0),
        _fb("a", 10.0, "class_7"),
        _fb("b", 11.0, {"label": 1}),
        _fb("c", 12.0, 2),
    )
    out = join(folder)
    assert out.rows == [[0.0, 1.0, 2]] and out.invalid_label == 2
    from legion_ci.feedback.labels import Target

    regressor = Target.of("regression", None, "y")
    assert join(folder, target=regressor).rows == [[0.0, 1.0, 2]]


def test_an_export_with_a_bad_label_still_trains(settings: Settings, tmp_path: Path) -> None:
    """Before: a "class_7" label for an integer classifier crashed train's split with a TypeError."""
    from legion_ci.core.spec import TrainSpec
    from legion_ci.training.data import load_dataset, split

    iris = load_dataset(TrainSpec(data="sklearn:load_iris"), tmp_path)
    names = list(iris.features.columns)
    header = {**HEADER, "features": names, "target": "target", "task": "classification", "classes": [0, 1, 2]}
    row = [float(v) for v in iris.features.iloc[0]]
    _segment(
        settings.feedback_dir / "iris",
        "seg-20260101T000001-1-000000001.jsonl",
        header,
        {**_pred("a", 1.0), "inputs": [row]},
        {**_pred("b", 2.0), "inputs": [row]},
        _fb("a", 3.0, 0),
        _fb("b", 4.0, "class_7"),
    )
    done = export_feedback(settings, "iris", None, tmp_path / "fb.csv")
    spec = TrainSpec(data="sklearn:load_iris")
    parts = split(load_dataset(spec, tmp_path, [tmp_path / "fb.csv"]), spec)  # before: TypeError here
    assert len(parts.y_train) + len(parts.y_test) == 151
    assert done.rows == 1 and done.left_out == {"invalid_label": 1}


def test_two_servers_segments_with_one_file_name_are_both_read_and_a_shipped_copy_once(settings: Settings) -> None:
    """Segment names are time + pid + ns: in containers the pid is often 1, so two pods can name a segment
    alike. What names a segment is its server id and file name; only a true copy (local and shipped) is
    read once."""
    name = "seg-20260101T000001-1-000000001.jsonl"
    pod_a, pod_b, shipped = (settings.feedback_dir / d for d in ("a", "b", "shipped"))
    _segment(pod_a, name, {**HEADER, "server": "pod-a"}, _pred("ra", 100.0), _fb("ra", 101.0, 1))
    _segment(pod_b, name, {**HEADER, "server": "pod-b"}, _pred("rb", 100.0), _fb("rb", 101.0, 2))
    _segment(shipped, name, {**HEADER, "server": "pod-a"}, _pred("ra", 100.0), _fb("ra", 101.0, 1))
    out = join_segments([pod_a / name, pod_b / name, shipped / name])
    assert sorted(out.rows) == [[0.0, 1.0, 1], [0.0, 1.0, 2]]


def test_two_servers_segments_with_one_file_name_keep_their_own_schemas(settings: Settings, tmp_path: Path) -> None:
    """Features are read once per segment, and a segment is named by its server id and file name: pod B's
    segment (other features, three columns) never takes pod A's features because the file names agree."""
    name = "seg-20260101T000001-1-000000001.jsonl"
    pod_a, pod_b = (settings.feedback_dir / "iris" / d for d in ("a", "b"))
    _segment(pod_a, name, {**HEADER, "server": "pod-a"}, _pred("ra", 100.0), _fb("ra", 101.0, 1))
    wide = {"kind": "prediction", "request_id": "rb", "ts": 200.0, "inputs": [[1.0, 2.0, 3.0]], "outputs": [0]}
    _segment(pod_b, name, {**HEADER, "server": "pod-b", "features": ["c", "d", "e"]}, wide, _fb("rb", 201.0, 2))
    out = join_segments([pod_a / name, pod_b / name])
    assert out.columns == ["c", "d", "e"] and out.rows == [[1.0, 2.0, 3.0, 2]]
    assert out.left_out() == {"other_schema": 1}


def test_a_feedback_batch_that_cannot_be_stored_stores_none_of_its_items(settings: Settings) -> None:
    folder = settings.feedback_dir / "iris"
    w = CaptureWriter(folder, "iris", "1.0.0", ["a", "b"], "species", segment_bytes=4096)
    assert w.feedback_many([("kept", 0, None, False)])
    batch = [(f"batch-{i}", 0, {"note": "x" * 100}, False) for i in range(30)]  # ~6 KB: over half a segment
    assert not w.feedback_many(batch)
    assert w.feedback_many(batch[:3])  # a batch that fits is stored whole
    w.close()
    ids = [r["request_id"] for _, r in read_store(folder)]
    assert ids == ["kept", "batch-0", "batch-1", "batch-2"]


def test_a_swap_queued_before_close_leaves_no_segment_open(settings: Settings) -> None:
    folder = settings.feedback_dir / "iris"
    loop = asyncio.new_event_loop()
    try:
        w = CaptureWriter(folder, "iris", "1.0.0", ["a", "b"], "species", loop=loop)
        assert w.prediction("r1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
        w.rotate_if_older(0)  # opens the next segment; the swap waits for the loop
        w.close()
        loop.run_until_complete(asyncio.sleep(0))  # the queued swap runs after close
    finally:
        loop.close()
    paths = segments(folder)
    assert len(paths) == 2
    for path in paths:  # every segment unlocked: another process (a shipper, a writer) may take it
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert not w.prediction("late", [[1.0, 2.0]], [0], None, 0.1, 2.0)  # an append after close stores nothing
    assert segments(folder) == paths  # and opens no segment
    assert [r["request_id"] for _, r in read_store(folder)] == ["r1"]
