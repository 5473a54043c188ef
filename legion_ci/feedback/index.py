"""Which request ids a capture store holds predictions for: O(1) per lookup, whatever the store's size.

Feedback must say whether its request id was captured. Scanning the store for each item costs the whole
store per item; instead each server process keeps an index of the ids in the store: 64-bit hashes in a
sorted numpy array (8 bytes per id) plus a set of the newest ones. The index reads each segment once, from
where it last stopped, so keeping up costs what was appended since, not the store (other processes'
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
_PREDICTION = re.compile(rb'^\{"kind":"prediction","request_id":"([A-Za-z0-9._:-]{1,128})"', re.MULTILINE)


class RequestIndex:
    """Request ids of the predictions in one model's capture store (see the module doc)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sealed = np.empty(0, dtype=np.int64)
        self._fresh: set[int] = set()
        self._sealing: set[int] = set()
        self._offsets: dict[str, int] = {}
        self._lock = threading.Lock()
        self._refreshed = float("-inf")

    def add(self, request_id: str) -> None:
        """An id this process just captured (the hot path: one hash, one set insert)."""
        self._fresh.add(hash(request_id))

    def __contains__(self, request_id: str) -> bool:
        h = hash(request_id)
        if h in self._fresh or h in self._sealing:
            return True
        sealed = self._sealed
        i = int(np.searchsorted(sealed, h))
        return i < len(sealed) and int(sealed[i]) == h

    def __len__(self) -> int:
        return len(self._sealed) + len(self._fresh)

    def known(self, request_id: str) -> bool:
        """In the store? A miss first catches up with the segments (at most every REFRESH_SECONDS)."""
        if request_id in self:
            return True
        if time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return False
        self.refresh()
        return request_id in self

    def refresh(self) -> None:
        """Read what each segment gained since the last refresh (blocking: call it off the event loop)."""
        with self._lock:
            found: list[int] = []
            for path in sorted(self.folder.glob(SEGMENT_GLOB)) if self.folder.is_dir() else []:
                self._read_new(path, found)
            self._fresh.update(found)
            self._refreshed = time.monotonic()
            if len(self._fresh) >= SEAL_AT:
                self._seal()

    def seal_if_large(self) -> None:
        """Move fresh ids into the sorted array once there are many (called from a background thread)."""
        if len(self._fresh) >= SEAL_AT:
            with self._lock:
                self._seal()

    def _seal(self) -> None:
        fresh, self._fresh = self._fresh, set()
        self._sealing = fresh  # still answered from here while the new array is built
        ids = list(fresh)
        self._sealed = np.union1d(self._sealed, np.fromiter(ids, dtype=np.int64, count=len(ids)))
        self._sealing = set()

    def _read_new(self, path: Path, found: list[int]) -> None:
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
        found.extend(hash(m.decode("ascii")) for m in _PREDICTION.findall(data, 0, end))
        self._offsets[path.name] = start + end
