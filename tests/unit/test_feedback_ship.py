"""The shipper on a folder store: closed segments ship once, open ones wait, a store that refuses writes
is counted and retried, an old segment rotates, and the export reads local plus shipped segments once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import CaptureWriter, read_store, segment_key, segments
from legion_ci.feedback.export import export_feedback
from legion_ci.feedback.ship import Shipper, all_segments, server_id


class Counts(dict[str, int]):
    """What the shipper reported: "shipped" and "failed" calls."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", registry_url="sqlite://", server_id="pod-a")


def _writer(settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> CaptureWriter:
    return CaptureWriter(
        settings.feedback_dir / "iris", "iris", "1", ["a", "b"], "t", fsync_interval=60, server="pod-a", loop=loop
    )


def _shipper(settings: Settings, store: Path, counts: dict[str, int]) -> Shipper:
    def bump(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    return Shipper(
        settings.feedback_dir / "iris",
        "iris",
        str(store),
        "pod-a",
        30,
        lambda: bump("shipped"),
        lambda: bump("failed"),
    )


def _shipped(store: Path) -> list[Path]:
    return sorted((store / "feedback" / "iris" / "pod-a").glob("seg-*.jsonl"))


def test_closed_segments_ship_once_and_open_ones_wait(settings: Settings, tmp_path: Path) -> None:
    store, counts = tmp_path / "store", Counts()
    w = _writer(settings)
    assert w.prediction("r1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    shipper = _shipper(settings, store, counts)
    assert shipper.ship() and _shipped(store) == []  # the open segment is its writer's (flock)
    w.close()
    assert shipper.ship()
    (copy,) = _shipped(store)
    assert copy.read_bytes() == segments(settings.feedback_dir / "iris")[0].read_bytes()
    assert counts == {"shipped": 1}
    assert shipper.ship() and counts == {"shipped": 1}  # marked: not again
    again = _shipper(settings, store, counts)  # a new process finds the marks on disk
    assert again.ship() and counts == {"shipped": 1}


def test_a_segment_with_only_its_header_is_not_shipped(settings: Settings, tmp_path: Path) -> None:
    store, counts = tmp_path / "store", Counts()
    _writer(settings).close()
    assert _shipper(settings, store, counts).ship()
    assert _shipped(store) == [] and counts == {}


def test_a_store_that_refuses_writes_is_counted_and_the_segment_ships_later(settings: Settings, tmp_path: Path) -> None:
    store, counts = tmp_path / "store", Counts()
    store.mkdir()
    (store / "feedback").write_text("a file where the store needs a folder")  # every upload fails
    w = _writer(settings)
    assert w.prediction("r1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    w.close()
    shipper = _shipper(settings, store, counts)
    assert not shipper.ship()
    assert not shipper.ship()
    assert counts == {"failed": 2} and shipper.failures == 2
    (store / "feedback").unlink()  # the store is back
    assert shipper.ship()
    assert counts == {"failed": 2, "shipped": 1} and len(_shipped(store)) == 1


def test_finish_gives_up_at_its_deadline_and_leaves_the_segment_on_disk(settings: Settings, tmp_path: Path) -> None:
    store, counts = tmp_path / "store", Counts()
    store.mkdir()
    (store / "feedback").write_text("not a folder")
    w = _writer(settings)
    assert w.feedback("r1", 1, None, False)
    w.close()
    assert not _shipper(settings, store, counts).finish(time.monotonic() + 0.1)
    assert counts["failed"] >= 1 and len(segments(settings.feedback_dir / "iris")) == 1


def test_an_old_segment_rotates_on_the_writers_loop_and_ships(settings: Settings, tmp_path: Path) -> None:
    store, counts = tmp_path / "store", Counts()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        w = _writer(settings, loop)
        first = w.path
        asyncio.run_coroutine_threadsafe(_append(w, "r1"), loop).result(timeout=10)
        w.rotate_if_older(3600)
        assert w.path == first  # young: stays open
        w.rotate_if_older(0)
        asyncio.run_coroutine_threadsafe(_append(w, "r2"), loop).result(timeout=10)  # after the swap
        assert w.path != first
        w.close_retired()
        shipper = _shipper(settings, store, counts)
        assert shipper.ship()
        (copy,) = _shipped(store)
        assert first is not None and copy.name == first.name
        assert [r["request_id"] for _, r in read_store([copy])] == ["r1"]
        w.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def _append(w: CaptureWriter, rid: str) -> None:
    assert w.prediction(rid, [[1.0, 2.0]], [0], None, 0.1, 1.0)


def test_export_reads_local_and_shipped_segments_once(settings: Settings, tmp_path: Path) -> None:
    w = _writer(settings)
    assert w.prediction("r1", [[1.0, 2.0]], [0], None, 0.1, 1.0)
    assert w.feedback("r1", 1, None, True)
    w.close()
    assert _shipper(settings, settings.home, {}).ship()  # the default store: $LEGION_HOME itself
    local = segments(settings.feedback_dir / "iris")
    files = all_segments(settings, "iris")
    assert len(local) == 1 and files == local  # the shipped copy, same key, counts once
    assert {segment_key(p) for p in files} == {("pod-a", local[0].name)}
    out = tmp_path / "fb.csv"
    assert export_feedback(settings, "iris", None, out).rows == 1
    assert pd.read_csv(out).to_numpy().tolist() == [[1.0, 2.0, 1]]


def test_server_id_defaults_to_a_safe_host_name(tmp_path: Path) -> None:
    sid = server_id(Settings(home=tmp_path, registry_url="sqlite://"))
    assert sid and all(c.isalnum() or c in "._-" for c in sid)
