"""The feedback shipper: a model server's capture segments, uploaded to the store; and their way back.

Where: `<store>/feedback/<model>/<server id>/<segment file>` (LEGION_STORE_URL; the default store is the
$LEGION_HOME folder, so there they land in $LEGION_HOME/feedback/<model>/<server id>/, by the same code).
When: a background thread of each server process wakes every second (or half the interval). It closes the
open segment once it holds records and is `interval` seconds old (`CaptureWriter.rotate_if_older`), then
uploads every segment of the capture folder that no process holds open (each writer keeps an flock on its
open segment: a segment is free once its writer closed it, or died) and that has not shipped to this store
yet (a marker in `.shipped/` beside the segments). On graceful shutdown the server closes its open segment
and ships what is left (`Shipper.finish`). Nothing here runs on the request path.

Idempotent: a segment's key is its server id and file name, and a closed segment never changes, so shipping
it twice writes the same bytes to the same key. While the store is down every failed upload is counted
(`on_failure`, the server's `legion_ship_errors_total`) and logged (the 1st, 10th, 100th, then every
1000th), and the shipper retries with backoff (1 s, doubling up to the interval); the segments wait on the
local disk and ship once the store answers again.

The way back, `shipped_segments`: the export and the retrain stage read the local capture folder plus every
segment in the store (a remote store's are mirrored into $LEGION_HOME/cache/feedback/<model>/); a segment
that is both local and shipped counts once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from legion_ci.core.settings import SERVER_ID, Settings
from legion_ci.core.store import CACHE, Store, StoreError, filesystem, is_remote
from legion_ci.feedback.capture import CaptureWriter, segment_data, segment_header, segment_key, segments, store_dir

log = logging.getLogger(__name__)
FEEDBACK = "feedback"
MARKS = ".shipped"
FIRST_BACKOFF = 1.0
S3_CONFIG = {"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 30}
LOCK_POLL = 0.05  # seconds between tries of the folder's ship lock while a graceful stop waits for it


def server_id(settings: Settings) -> str:
    """This server's id in the store: LEGION_SERVER_ID, else the host name (a pod's name), made safe."""
    if settings.server_id:
        return settings.server_id
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")[:128]
    return name or "server"


def feedback_prefix(store_url: str, model: str) -> str:
    return f"{store_url.rstrip('/')}/{FEEDBACK}/{model}"


class Shipper:
    """Uploads the closed segments of one capture folder to `<store>/feedback/<model>/<server id>/`."""

    def __init__(
        self,
        folder: Path,
        model: str,
        store_url: str,
        server: str,
        interval: float,
        on_shipped: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.folder, self.model, self.server, self.interval = folder, model, server, interval
        self.url = feedback_prefix(store_url, model)
        self.local = not is_remote(store_url)
        # a bad URL is told at start, before the port is bound; an S3 call gives up after 2 tries and the
        # shipper's own backoff takes over (botocore alone would spend ~11 s on a refused connection)
        self.fs: Any = None
        self.root = self.url.removeprefix("file://")  # a folder: written with os calls, fsspec not imported
        if not self.local:
            options = {"config_kwargs": S3_CONFIG} if self.url.startswith("s3://") else {}
            self.fs, self.root = filesystem(self.url, **options)
        self.on_shipped, self.on_failure = on_shipped, on_failure
        self.writer: CaptureWriter | None = None
        self.marks = folder / MARKS / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.done: set[str] = set()
        self.shipped = 0
        self.failures = 0
        self._backoff = 0.0
        self._next_try = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the background thread -----------------------------------------------------------------------
    def start(self, writer: CaptureWriter | None) -> None:
        self.writer = writer
        self._thread = threading.Thread(target=self._run, name="capture-ship", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = min(1.0, self.interval / 2)
        while not self._stop.wait(tick):
            try:
                if self.writer is not None:
                    self.writer.rotate_if_older(self.interval)
                if time.monotonic() >= self._next_try:
                    self.ship()
            except Exception:  # the thread must outlive any surprise; the next tick tries again
                log.exception("ship: unexpected error shipping %s", self.folder)

    def stop(self) -> None:
        """Tell the background thread to stop after its current pass; no wait (a pass may hang on the store,
        and a graceful stop has a deadline: `finish` keeps to it)."""
        self._stop.set()

    def finish(self, deadline: float) -> bool:
        """Graceful shutdown, after the writer closed its segment: ship what is left, trying again until
        `deadline` (time.monotonic()). True when nothing is left to ship. The passes run on a daemon thread
        that is not waited for past the deadline: an upload hanging on the store cannot hold the process,
        and what it did not ship (no marker) stays on disk and ships when a server next starts there."""
        shipped: list[bool] = []

        def passes() -> None:
            try:
                while time.monotonic() < deadline:
                    if self.ship(wait=True, deadline=deadline):
                        shipped.append(True)
                        return
                    time.sleep(max(min(self._backoff, deadline - time.monotonic()), 0.0))
            except Exception:
                log.exception("ship: unexpected error shipping %s", self.folder)

        thread = threading.Thread(target=passes, name="capture-finish", daemon=True)
        thread.start()
        thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        if shipped:
            return True
        log.warning("ship: stopping; segments of %s not shipped to %s stay on disk", self.folder, self.url)
        return False

    # -- one pass ------------------------------------------------------------------------------------
    def ship(self, wait: bool = False, deadline: float | None = None) -> bool:
        """Upload every free segment not shipped yet; True when none is left (a busy open segment aside).
        One process of a folder ships at a time (workers and replicas share it): without `wait`, a pass
        that finds another one shipping leaves the work to it; with it, the pass waits for its turn until
        `deadline` (time.monotonic(); None: no limit) and returns False when that passes first."""
        if not self._lock.acquire(timeout=-1 if deadline is None else max(deadline - time.monotonic(), 0.0)):
            return False  # this process's thread is in a pass (maybe hanging on the store)
        try:
            self.marks.mkdir(parents=True, exist_ok=True)
            with (self.marks / ".lock").open("a") as lock:
                while True:
                    try:
                        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if not wait:
                            return True
                        if deadline is not None and time.monotonic() >= deadline:
                            return False
                        time.sleep(LOCK_POLL)
                return self._pass()
        finally:
            self._lock.release()

    def _pass(self) -> bool:
        for path in segments(self.folder):
            name = path.name
            if name in self.done:
                continue
            if (self.marks / name).exists():
                self.done.add(name)
                continue
            data = _free_segment_data(path)
            if data is None:  # open: its writer still appends to it
                continue
            header = segment_header(data)
            if not header and not data:  # nothing yet (cannot happen with our writer; wait and see)
                continue
            if data.count(b"\n") > 1 or not header:
                server = str(header.get("server") or "")
                if not SERVER_ID.match(server):
                    server = self.server  # a segment written before servers had ids ships as ours
                try:
                    self._put(f"{self.root}/{server}/{name}", data)
                except Exception as exc:  # the store is down, refuses us, or times out
                    self._failed(exc)
                    return False
                self.shipped += 1
                if self.on_shipped is not None:
                    self.on_shipped()
            (self.marks / name).touch()  # shipped, or only a header: nothing to ship
            self.done.add(name)
        if self.failures and self._backoff:
            log.info("ship: the store at %s answers again; segments shipped", self.url)
        self._backoff = 0.0
        self._next_try = 0.0
        return True

    def _put(self, target: str, data: bytes) -> None:
        if self.local:  # a folder: write beside the target and rename, so no reader sees half a segment
            folder = Path(target).parent
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ship-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self.fs.pipe_file(target, data)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure()
        self._backoff = min(max(self._backoff * 2, FIRST_BACKOFF), max(self.interval, FIRST_BACKOFF))
        self._next_try = time.monotonic() + self._backoff
        if self.failures in (1, 10, 100) or self.failures % 1000 == 0:
            log.warning(
                "ship: cannot upload to %s (%d failures so far; retrying in %.0f s, segments wait on disk): %s",
                self.url,
                self.failures,
                self._backoff,
                exc,
            )


def _free_segment_data(path: Path) -> bytes | None:
    """A segment's data if no process holds it open (its writer's flock), else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return segment_data(path)
    except OSError:
        return None
    finally:
        os.close(fd)


# -- the way back: export and retrain ------------------------------------------------------------------
def shipped_segments(settings: Settings, model: str) -> list[Path]:
    """Every segment of `model` shipped to the store, as local files: read in place from a local store, or
    mirrored from a remote one into $LEGION_HOME/cache/feedback/<model>/<server id>/ (a file already
    cached with the store's size is not fetched again)."""
    store = Store.from_settings(settings)
    url = feedback_prefix(store.url, model)
    if not store.remote:
        root = Path(url.removeprefix("file://"))
        return sorted(root.glob("*/seg-*.jsonl")) if root.is_dir() else []
    fs, root_path = filesystem(url)
    cache = settings.home / CACHE / FEEDBACK / model
    found: list[Path] = []
    try:
        listing: dict[str, Any] = fs.glob(f"{root_path}/*/seg-*.jsonl", detail=True)
        for key, info in sorted(listing.items()):
            server, name = key.rstrip("/").split("/")[-2:]
            if not SERVER_ID.match(server):
                continue
            local = cache / server / name
            if not (local.is_file() and local.stat().st_size == int(info.get("size") or -1)):
                local.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".fetch-")
                os.close(fd)
                try:
                    fs.get_file(key, tmp)
                    os.replace(tmp, local)
                finally:
                    Path(tmp).unlink(missing_ok=True)
            found.append(local)
    except OSError as exc:
        raise StoreError(f"{url}: cannot read the shipped feedback: {exc}") from None
    return found


def all_segments(settings: Settings, model: str) -> list[Path]:
    """The local capture folder's segments plus the shipped ones, each segment once (by server id and file
    name; of two copies the longer, which can only be the same records and more), oldest first."""
    chosen: dict[tuple[str, str], Path] = {}
    for path in [*segments(store_dir(settings.feedback_dir, model)), *shipped_segments(settings, model)]:
        key = segment_key(path)
        other = chosen.get(key)
        if other is None or _size(path) > _size(other):
            chosen[key] = path
    return [chosen[key] for key in sorted(chosen, key=lambda k: (k[1], k[0]))]


def _size(path: Path) -> int:
    try:
        return len(segment_data(path))
    except OSError:
        return -1
