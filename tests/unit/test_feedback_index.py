"""The request-id index of a capture store: ids of every segment, found after they are appended, torn lines
skipped, lookups unchanged by sealing."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion_ci.feedback import index as index_module
from legion_ci.feedback.capture import CaptureWriter
from legion_ci.feedback.index import RequestIndex


def _writer(folder: Path) -> CaptureWriter:
    return CaptureWriter(folder, "iris", "1.0.0", ["a", "b"], "species", fsync_interval=60, segment_bytes=1 << 16)


def test_ids_of_every_segment_and_process_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    first = _writer(folder)
    for i in range(300):  # several rotations of 64 KB segments
        first.prediction(f"a-{i}", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    first.feedback("fb-only", 1, None, False)
    first.close()
    second = _writer(folder)  # another process's segment, still open
    second.prediction("b-1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    index = RequestIndex(folder)
    index.refresh()
    assert all(index.known(f"a-{i}") for i in range(300)) and index.known("b-1")
    assert not index.known("fb-only") and not index.known("a-300")
    second.prediction("b-2", [[1.0, 2.0]], [0], None, 0.1, 1.0)  # appended after the refresh
    index.refresh()
    assert index.known("b-2")
    second.close()


def test_a_torn_last_line_is_read_once_it_is_whole(tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    folder.mkdir()
    segment = folder / "seg-20260101T000000-1-000000001.jsonl"
    segment.write_bytes(b'{"kind":"prediction","request_id":"whole","ts":1}\n{"kind":"prediction","request_id":"to')
    index = RequestIndex(folder)
    index.refresh()
    assert "whole" in index and "torn" not in index
    with segment.open("ab") as fh:
        fh.write(b'rn","ts":2}\n')
    index.refresh()
    assert "torn" in index


def test_sealing_keeps_every_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "SEAL_AT", 100)
    index = RequestIndex(tmp_path)
    for i in range(1000):
        index.add(f"id-{i}")
        index.seal_if_large()
    assert len(index) == 1000 and all(f"id-{i}" in index for i in range(1000)) and "id-1000" not in index


def test_row_counts_are_kept_through_sealing_and_conflicts_are_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "iris"
    w = _writer(folder)
    w.prediction("ten", [[1.0, 2.0]] * 10, [0] * 10, None, 0.1, 1.0)
    w.close()
    index = RequestIndex(folder)
    index.refresh()
    assert index.lookup("ten") == 10 and index.lookup("nope") is None
    monkeypatch.setattr(index_module, "SEAL_AT", 10)
    for i in range(30):
        index.add(f"id-{i}", i + 1)
        index.seal_if_large()
    index.add("id-3", 7)  # the same id with another row count: it cannot be checked
    index.add("id-29", 30)
    index.seal_if_large()
    index._seal()
    assert [index.rows(f"id-{i}") for i in (0, 3, 28, 29)] == [1, index_module.UNKNOWN_ROWS, 29, 30]
    assert index.rows("ten") == 10
