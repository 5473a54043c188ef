"""Which request ids a capture store holds predictions for: O(1) per lookup, whatever the store's size.

Feedback must say whether its request id was captured. Scanning the store for each item costs the whole
store per item; instead each server process keeps an index of the ids in the store: 64-bit hashes in a
sorted numpy array with each request's row count beside it (12 bytes per id) plus a dict of the newest
ones; the row count lets the feedback endpoint refuse ground truth of the wrong length. The index reads each
segment once, from where it last stopped, so keeping up costs what was appended since, not the store (other processes'
segments included). A hash collision can only make an unknown id look known (odds ~ ids / 2**64), and
`matched` is advice to the caller: the export joins on the records themselves.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np

SEGMENT_GLOB = "seg-*.jsonl"
SEAL_AT = 65_536  # fresh ids kept in a set before they move into the sorted array
REFRESH_SECONDS = 0.25  # a miss reads what segments gained at most this often
CHUNK = 1 << 16
_PREDICTION = re.compile(
    rb'^\{"kind":"prediction","request_id":"([A-Za-z0-9._:-]{1,128})"(?:,"rows":(\d{1,9}))?', re.MULTILINE
)
UNKNOWN_ROWS = -1  # captured before records carried their row count, or twice with different counts


class RequestIndex:
    """Request ids of the predictions in one model's capture store (see the module doc)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sealed = np.empty(0, dtype=np.int64)
        self._sealed_rows = np.empty(0, dtype=np.int32)
        self._fresh: dict[int, int] = {}
        self._sealing: dict[int, int] = {}
        self._offsets: dict[str, int] = {}
        self._lock = threading.Lock()
        self._refreshed = float("-inf")

    def add(self, request_id: str, rows: int = UNKNOWN_ROWS) -> None:
        """An id this process just captured with its row count (the hot path: one hash, one dict insert)."""
        _merge(self._fresh, hash(request_id), rows)

    def rows(self, request_id: str) -> int | None:
        """The captured request's row count (UNKNOWN_ROWS when not recorded), None when not in the index."""
        h = hash(request_id)
        found = self._fresh.get(h)
        if found is None:
            found = self._sealing.get(h)
        if found is not None:
            return found
        sealed = self._sealed
        i = int(np.searchsorted(sealed, h))
        if i < len(sealed) and int(sealed[i]) == h:
            return int(self._sealed_rows[i])
        return None

    def __contains__(self, request_id: str) -> bool:
        return self.rows(request_id) is not None

    def __len__(self) -> int:
        return len(self._sealed) + len(self._fresh)

    def known(self, request_id: str) -> bool:
        """In the store? A miss first catches up with the segments (at most every REFRESH_SECONDS)."""
        return self.lookup(request_id) is not None

    def lookup(self, request_id: str) -> int | None:
        """`rows()`, but a miss first catches up with the segments (at most every REFRESH_SECONDS)."""
        found = self.rows(request_id)
        if found is not None or time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return found
        self.refresh()
        return self.rows(request_id)

    def refresh(self) -> None:
        """Read what each segment gained since the last refresh (blocking: call it off the event loop)."""
        with self._lock:
            found: list[tuple[int, int]] = []
            for path in sorted(self.folder.glob(SEGMENT_GLOB)) if self.folder.is_dir() else []:
                self._read_new(path, found)
            for h, rows in found:
                _merge(self._fresh, h, rows)
            self._refreshed = time.monotonic()
            if len(self._fresh) >= SEAL_AT:
                self._seal()

    def seal_if_large(self) -> None:
        """Move fresh ids into the sorted array once there are many (called from a background thread)."""
        if len(self._fresh) >= SEAL_AT:
            with self._lock:
                self._seal()

    def _seal(self) -> None:
        fresh, self._fresh = self._fresh, {}
        self._sealing = fresh  # still answered from here while the new arrays are built
        ids = np.concatenate([self._sealed, np.fromiter(fresh.keys(), dtype=np.int64, count=len(fresh))])
        counts = np.concatenate([self._sealed_rows, np.fromiter(fresh.values(), dtype=np.int32, count=len(fresh))])
        order = np.argsort(ids, kind="stable")
        ids, counts = ids[order], counts[order]
        unique, starts = np.unique(ids, return_index=True)
        low, high = np.minimum.reduceat(counts, starts), np.maximum.reduceat(counts, starts)
        self._sealed_rows = np.where(low == high, low, UNKNOWN_ROWS).astype(np.int32)
        self._sealed = unique
        self._sealing = {}

    def _read_new(self, path: Path, found: list[tuple[int, int]]) -> None:
        """Complete lines of `path` after its recorded offset, up to its data's end (the first zero byte)."""
        start = self._offsets.get(path.name, 0)
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                data = b""
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    zero = chunk.find(b"\x00")
                    data += chunk if zero < 0 else chunk[:zero]
                    if zero >= 0:
                        break
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a torn or still-being-written last line waits for the next time
        if end <= 0:
            return
        found.extend(
            (hash(rid.decode("ascii")), int(rows) if rows else UNKNOWN_ROWS)
            for rid, rows in _PREDICTION.findall(data, 0, end)
        )
        self._offsets[path.name] = start + end


def _merge(ids: dict[int, int], h: int, rows: int) -> None:
    """Record `rows` for id hash `h`; an id seen with two different counts has UNKNOWN_ROWS."""
    earlier = ids.get(h)
    ids[h] = rows if earlier is None or earlier == rows else UNKNOWN_ROWS
