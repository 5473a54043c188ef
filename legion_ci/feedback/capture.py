"""Feedback capture: every answered invoke, appended to segment files under $LEGION_HOME/feedback/MODEL/.

The store is a folder of append-only JSON Lines segments, one open segment per server process. A segment
is preallocated (posix_fallocate, so a full disk shows up when a segment is opened, never mid-write) and
memory-mapped: the hot path copies one pre-encoded line into the shared mapping, which is the page cache
of the file, before the answer is sent. No system call, no lock. A background thread fdatasyncs the
segment every `fsync_interval` seconds. Hence the promise (docs/serving.md): an acknowledged request is in
the store even if the server is killed (SIGKILL, OOM, crash); on power loss at most the last
`fsync_interval` of records may be lost. A closed segment is truncated to its data; a segment left by a
killed process ends in zero bytes, which readers ignore, as they ignore a torn last line.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from legion_ci.asgi.request_id import valid_request_id
from legion_ci.feedback.index import RequestIndex

log = logging.getLogger(__name__)
SEGMENT_BYTES = 16 << 20
SEGMENT_GLOB = "seg-*.jsonl"
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


def store_dir(feedback_dir: Path, model: str) -> Path:
    return feedback_dir / model


@dataclass(eq=False, slots=True)
class _Segment:
    """One open segment: its file (locked by this process while open), mapping and write position."""

    path: Path
    fd: int
    map: mmap.mmap
    pos: int
    start: int  # where the records begin (after the header line)
    opened: float  # time.monotonic() when it was opened


class CaptureWriter:
    """Appends prediction and feedback records for one model version to this process's segment.

    Records are appended on one thread (the server's event loop). A segment is closed when it is full (on
    that thread) or, through `rotate_if_older`, when it is old (the shipper's thread prepares the next
    segment, the event loop swaps it in between two requests, and the old one is closed off the loop)."""

    def __init__(
        self,
        folder: Path,
        model: str,
        version: str,
        features: list[str],
        target: str,
        rate: float = 1.0,
        fsync_interval: float = 1.0,
        segment_bytes: int = SEGMENT_BYTES,
        task: str | None = None,
        classes: list[Any] | None = None,
        server: str = "",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.folder = folder
        self.model, self.version = model, version
        self.header = {
            "kind": "segment",
            "model": model,
            "version": version,
            "features": features,
            "target": target,
            "task": task,
            "classes": classes,
            "pid": os.getpid(),
            "server": server,
        }
        self.rate = rate
        self.fsync_interval = fsync_interval
        self.segment_bytes = segment_bytes
        self.loop = loop
        self.index = RequestIndex(folder)
        self.errors = 0
        self.written = 0
        self._lock = threading.Lock()
        self._closed = False  # set by close() under _lock: no segment is opened, swapped in or kept after it
        self._dirty = False
        self._seg: _Segment | None = None
        self._retired: list[_Segment] = []
        self._stop = threading.Event()
        folder.mkdir(parents=True, exist_ok=True)
        self._seg = self._new_segment()
        self._dirty = True
        self._thread = threading.Thread(target=self._sync_loop, name="capture-sync", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path | None:
        seg = self._seg
        return seg.path if seg is not None else None

    # -- segments ------------------------------------------------------------------------------------
    def _new_segment(self) -> _Segment:
        """A new segment, preallocated, mapped, locked (flock: a shipper leaves it alone while it is
        open) and holding its header; created under a hidden name and renamed, so no reader ever sees it
        unlocked or empty."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"seg-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}.jsonl"
        hidden = self.folder / f".{name}.new"
        fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, self.segment_bytes)
            mapping = mmap.mmap(fd, self.segment_bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            line = orjson.dumps({**self.header, "ts": time.time()}, option=_OPTS)
            mapping[: len(line)] = line
            os.rename(hidden, self.folder / name)
        except OSError:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        return _Segment(self.folder / name, fd, mapping, len(line), len(line), time.monotonic())

    def _close_segment(self, seg: _Segment) -> None:
        """Flush, unmap and truncate a segment to its data, then let go of its lock (caller holds _lock)."""
        try:
            seg.map.flush()
            seg.map.close()
            os.ftruncate(seg.fd, seg.pos)
            os.fsync(seg.fd)
        except (OSError, ValueError) as exc:
            log.warning("capture: closing %s: %s", seg.path, exc)
        finally:
            os.close(seg.fd)

    def _rotate(self) -> _Segment:
        with self._lock:
            if self._closed:
                raise OSError("the capture writer is closed (the server is stopping)")
            if self._seg is not None:
                self._close_segment(self._seg)
                self._seg = None
            self._seg = self._new_segment()
            return self._seg

    def rotate_if_older(self, age: float) -> None:
        """Close the open segment if it holds records and was opened `age` seconds ago or more (called off
        the event loop; the swap itself runs on the loop, so no append ever meets a closed mapping)."""
        self.close_retired()
        seg = self._seg
        if self._closed or seg is None or seg.pos <= seg.start or time.monotonic() - seg.opened < age:
            return
        fresh = self._new_segment()

        def swap() -> None:
            with self._lock:
                if self._closed:  # close() ran first and closed `seg`: nobody else would close `fresh`
                    self._close_segment(fresh)
                    return
                if self._seg is seg:
                    self._seg = fresh
                    self._retired.append(seg)
                else:  # rotated (full) meanwhile: the fresh segment holds only its header
                    self._retired.append(fresh)
                self._dirty = True

        if self.loop is None:
            swap()
            self.close_retired()
            return
        try:
            self.loop.call_soon_threadsafe(swap)
        except RuntimeError:  # the loop is closed: the server is stopping, the swap will never run
            with self._lock:
                self._close_segment(fresh)

    def close_retired(self) -> None:
        """Close the segments swapped out by `rotate_if_older` (off the event loop)."""
        with self._lock:
            while self._retired:
                self._close_segment(self._retired.pop())

    def _sync_loop(self) -> None:
        try:
            self.index.refresh()  # warm: the first feedback does not wait for the store to be read
        except Exception:
            log.exception("capture: cannot index the request ids of %s", self.folder)
        while not self._stop.wait(self.fsync_interval):
            self.sync()
            self.index.seal_if_large()

    def sync(self) -> None:
        """Flush the open segment's dirty pages to disk if anything was written since the last time."""
        if not self._dirty:
            return
        with self._lock:
            self._dirty = False
            seg = self._seg
            try:
                if seg is not None:
                    os.fdatasync(seg.fd)  # writes back the mapping's dirty pages; releases the GIL
            except OSError as exc:
                log.warning("capture: fdatasync of %s failed: %s", seg.path if seg else None, exc)

    def close(self, timeout: float = 5.0) -> None:
        """Close the open segment (truncated to its data, unlocked: free to ship). Safe from another thread
        than the appending one: an append after this returns False, a swap still queued closes its segment."""
        self._stop.set()
        self._thread.join(timeout=max(timeout, 0.0))
        with self._lock:
            self._closed = True
            if self._seg is not None:
                self._close_segment(self._seg)
                self._seg = None
        self.close_retired()

    # -- records -------------------------------------------------------------------------------------
    def sampled(self) -> bool:
        return self.rate >= 1.0 or random.random() < self.rate

    def _append(self, record: dict[str, Any]) -> bool:
        return self._append_many([record])

    def _append_many(self, records: list[dict[str, Any]]) -> bool:
        """Append the records as one contiguous write into one segment: all of them, or (False) none."""
        try:
            if self._closed:
                raise OSError("the capture writer is closed (the server is stopping)")
            data = b"".join([orjson.dumps(record, option=_OPTS) for record in records])
            seg = self._seg
            if seg is None or seg.pos + len(data) > self.segment_bytes:
                if len(data) * 2 > self.segment_bytes:
                    raise OSError(f"{len(data)} bytes of records do not fit a {self.segment_bytes}-byte segment")
                seg = self._rotate()
            end = seg.pos + len(data)
            seg.map[seg.pos : end] = data  # a closed mapping raises ValueError: nothing written
        except (OSError, ValueError, orjson.JSONEncodeError) as exc:
            self.errors += 1
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.error("capture: cannot write to %s (%d failures so far): %s", self.path, self.errors, exc)
            return False
        seg.pos = end
        self._dirty = True
        self.written += len(records)
        return True

    def prediction(
        self,
        request_id: str,
        inputs: list[list[Any]],
        outputs: Any,
        probabilities: Any,
        latency_ms: float,
        ts: float,
        shadow: bool = False,
    ) -> bool:
        """Record one answered invoke; True once it is in the store (written before the answer goes out).
        `shadow`: a copy the router mirrored (X-Legion-Shadow: 1), whose answer no caller saw; the record says
        "shadow": true and keeps the caller's request id, so it compares with production's offline."""
        record = {
            "kind": "prediction",
            "request_id": request_id,
            "rows": len(inputs),  # right after the id: the index reads both without parsing the line
            "ts": ts,
            "model": self.model,
            "version": self.version,
            "inputs": inputs,
            "outputs": outputs,
            "latency_ms": latency_ms,
        }
        if probabilities is not None:
            record["probabilities"] = probabilities
        if shadow:
            record["shadow"] = True
        ok = self._append(record)
        if ok:
            self.index.add(request_id, len(inputs))
        return ok

    def feedback(self, request_id: str, ground_truth: Any, payload: Any, matched: bool) -> bool:
        return self.feedback_many([(request_id, ground_truth, payload, matched)])

    def feedback_many(self, items: list[tuple[str, Any, Any, bool]]) -> bool:
        """Record the ground truth of one feedback request, (request id, ground truth, payload, matched) per
        item, as one write: True once all are in the store; False (a full disk, a closed writer) and none is."""
        ts = time.time()
        return self._append_many(
            [
                {
                    "kind": "feedback",
                    "request_id": request_id,
                    "ts": ts,
                    "model": self.model,
                    "version": self.version,
                    "ground_truth": ground_truth,
                    "payload": payload,
                    "matched": matched,
                }
                for request_id, ground_truth, payload, matched in items
            ]
        )

    def known(self, request_id: str) -> bool:
        """Was this request id captured (by any process, in the store)? O(1); blocking on a miss while the
        index catches up with the segments, so call it off the event loop."""
        return self.index.known(request_id)

    def rows_of(self, request_id: str) -> int | None:
        """The row count of the captured request with this id (index.UNKNOWN_ROWS when the store does not
        say), None when no process captured it; blocking like `known`."""
        return self.index.lookup(request_id)


def segments(folder: Path) -> list[Path]:
    """Segment files, oldest first (their names start with the UTC time they were opened)."""
    return sorted(folder.glob(SEGMENT_GLOB)) if folder.is_dir() else []


def segment_header(data: bytes) -> dict[str, Any]:
    """The header record of a segment's data ({} when its first line is not one)."""
    try:
        first = orjson.loads(data[: data.find(b"\n")] if b"\n" in data else data)
    except orjson.JSONDecodeError:
        return {}
    return first if isinstance(first, dict) and first.get("kind") == "segment" else {}


def segment_key(path: Path) -> tuple[str, str]:
    """What names a segment wherever it is (local folder, store, cache): its server id and file name. A
    segment written before servers had ids has "" as its server."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return "", path.name
    return str(segment_header(head.split(b"\x00", 1)[0]).get("server") or ""), path.name


def segment_data(path: Path) -> bytes:
    """A segment's data: up to the first zero byte (the unused, preallocated tail of an open segment)."""
    data = path.read_bytes()
    end = data.find(b"\x00")
    return data if end < 0 else data[:end]


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one segment; a torn or corrupt line (an unacknowledged write) is skipped."""
    try:
        data = segment_data(path)
    except OSError as exc:
        log.warning("capture: cannot read %s: %s", path, exc)
        return
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def read_store(source: Path | Iterable[Path]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(segment header, record) for every record of a store folder, oldest segment first, or of the given
    segment files in their order."""
    for path in segments(source) if isinstance(source, Path) else source:
        header: dict[str, Any] = {}
        for record in read_segment(path):
            if record.get("kind") == "segment":
                header = record
            else:
                yield header, record


def find_prediction(folder: Path, request_id: str) -> bool:
    """Search the store (newest segment first) for a prediction with this request id."""
    if not valid_request_id(request_id):
        return False
    needle = b'"request_id":"' + request_id.encode() + b'"'
    for path in reversed(segments(folder)):
        try:
            data = segment_data(path)
        except OSError:
            continue
        start = data.find(needle)
        while start >= 0:
            line_start = data.rfind(b"\n", 0, start) + 1
            line_end = data.find(b"\n", start)
            if line_end > 0 and data.startswith(b'{"kind":"prediction"', line_start):
                try:
                    if orjson.loads(data[line_start:line_end]).get("request_id") == request_id:
                        return True
                except orjson.JSONDecodeError:
                    pass
            start = data.find(needle, start + 1)
    return False
