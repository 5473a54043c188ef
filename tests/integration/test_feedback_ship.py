"""Capture segments shipped to the S3 store by real servers: on the interval, on SIGTERM, through a store
outage (no request fails, the metric counts it, the segment arrives later), and read back by the export
from a fresh $LEGION_HOME with no duplicates."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from legion_ci.core.settings import load_settings
from legion_ci.feedback.capture import read_store
from legion_ci.feedback.ship import all_segments
from tests.s3 import BUCKET, S3Server, free_port, start_moto, stop_moto

from .conftest import ROOT, Server, start_server

API = "/api/model/iris/1.0.0"
GRACEFUL = (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down gracefully
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4], [6.3, 3.3, 6.0, 2.5]]


def _serve(artifact: Path, home: Path, url: str, s3: S3Server, *args: str) -> Server:
    env = {**s3.env, "LEGION_STORE_URL": url, "LEGION_SERVER_ID": "pod-1"}
    return start_server(artifact, home, "--no-auth", *args, env=env)


def _traffic(srv: Server, prefix: str, n: int) -> list[str]:
    """n invokes with ground truth for each; every answer must be a 200."""
    ids = []
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        for i in range(n):
            rid = f"{prefix}-{i}"
            answer = c.post(f"{API}/invoke", json={"instances": [ROWS[i % 3]]}, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            assert c.post(f"{API}/feedback", json={"request_id": rid, "ground_truth": i % 3}).status_code == 200
            ids.append(rid)
    return ids


def _shipped_ids(s3: S3Server, prefix: str) -> set[str]:
    """Request ids of the predictions in the segments under s3://BUCKET/PREFIX/feedback/iris/pod-1/."""
    client = s3.client()
    found: set[str] = set()
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/feedback/iris/pod-1/")
    for item in listing.get("Contents", []):
        assert re.fullmatch(rf"{prefix}/feedback/iris/pod-1/seg-[0-9T]+-\d+-\d+\.jsonl", item["Key"])
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for line in body.splitlines():
            if line.startswith(b'{"kind":"prediction"'):
                found.add(re.search(rb'"request_id":"([^"]+)"', line)[1].decode())  # type: ignore[index]
    return found


def _until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def _metric(srv: Server, name: str) -> float:
    text = httpx.get(f"{srv.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _export(home: Path, env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", "feedback", "export", "iris", "--out", str(out)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LEGION_HOME": str(home), **env},
        cwd=ROOT,
        timeout=120,
    )


def test_segments_ship_on_the_interval_while_serving(iris_artifact: Path, s3_server: S3Server, tmp_path: Path) -> None:
    prefix = uuid.uuid4().hex[:8]
    srv = _serve(iris_artifact, tmp_path / "home", f"s3://{BUCKET}/{prefix}", s3_server, "--ship-interval", "1")
    try:
        ids = _traffic(srv, "tick", 20)
        _until("the segment shipped", lambda: set(ids) <= _shipped_ids(s3_server, prefix))
        assert srv.proc.poll() is None  # shipped by the interval, not by a shutdown
        assert _metric(srv, "legion_shipped_segments_total") >= 1
        later = _traffic(srv, "tock", 5)  # the next segment ships too
        _until("the next segment shipped", lambda: set(later) <= _shipped_ids(s3_server, prefix))
        assert _metric(srv, "legion_ship_errors_total") == 0
    finally:
        assert srv.stop() in GRACEFUL


def test_sigterm_ships_the_open_segment_and_a_fresh_home_exports_it(
    iris_artifact: Path, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = uuid.uuid4().hex[:8]
    url = f"s3://{BUCKET}/{prefix}"
    home = tmp_path / "home"
    srv = _serve(iris_artifact, home, url, s3_server, "--ship-interval", "1h")
    ids = _traffic(srv, "term", 30)
    assert _shipped_ids(s3_server, prefix) == set()  # an hour's interval: nothing shipped yet
    assert srv.stop() in GRACEFUL  # SIGTERM
    assert _shipped_ids(s3_server, prefix) == set(ids)

    env = {**s3_server.env, "LEGION_STORE_URL": url}
    fresh = tmp_path / "fresh"  # another agent: an empty workspace sharing only the store
    done = _export(fresh, env, tmp_path / "fresh.csv")
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(tmp_path / "fresh.csv")) == 30
    assert (fresh / "cache" / "feedback" / "iris" / "pod-1").is_dir()

    # the server's own home holds each segment twice (its local file and, mirrored, the shipped copy)
    settings = load_settings(str(home), store_url=url)
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    files = all_segments(settings, "iris")
    names = [p.name for p in files]
    assert len(names) == len(set(names)) == len(list((home / "feedback" / "iris").glob("seg-*.jsonl")))
    done = _export(home, env, tmp_path / "home.csv")
    assert done.returncode == 0, done.stderr
    predictions = [r for _, r in read_store(files) if r["kind"] == "prediction"]
    assert len(predictions) == 30  # read once each
    assert pd.read_csv(tmp_path / "home.csv").equals(pd.read_csv(tmp_path / "fresh.csv"))


def test_a_store_down_fails_no_request_is_counted_and_the_segment_ships_when_it_is_back(
    iris_artifact: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet: the store is down from the start
    down = S3Server(f"http://127.0.0.1:{port}")
    prefix = uuid.uuid4().hex[:8]
    srv = _serve(iris_artifact, tmp_path / "home", f"s3://{BUCKET}/{prefix}", down, "--ship-interval", "1")
    proc = None
    try:
        ids = _traffic(srv, "down", 20)  # every answer a 200 (asserted inside)
        _until("an upload failure counted", lambda: _metric(srv, "legion_ship_errors_total") >= 1)
        ids += _traffic(srv, "still", 5)
        assert any("ship: cannot upload to s3://" in line for line in srv.lines)
        proc, up = start_moto(port, tmp_path / "moto.log")  # the store comes back, empty but for the bucket
        _until("the waiting segments shipped", lambda: set(ids) <= _shipped_ids(up, prefix), seconds=90)
        assert _metric(srv, "legion_shipped_segments_total") >= 1
    finally:
        assert srv.stop() in GRACEFUL
        if proc is not None:
            stop_moto(proc)


class HangingStore:
    """A store that accepts every TCP connection and never answers (a hung S3 endpoint)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = S3Server(f"http://127.0.0.1:{self.sock.getsockname()[1]}")
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_hung_store_does_not_hold_a_graceful_stop_and_the_segment_ships_at_the_next_start(
    iris_artifact: Path, s3_server: S3Server, tmp_path: Path
) -> None:
    hung = HangingStore()
    prefix = uuid.uuid4().hex[:8]
    home = tmp_path / "home"
    env = {**hung.endpoint.env, "LEGION_STORE_URL": f"s3://{BUCKET}/{prefix}", "LEGION_SERVER_ID": "pod-1"}
    srv = start_server(
        iris_artifact, home, "--no-auth", "--ship-interval", "1", env={**env, "LEGION_SHIP_SHUTDOWN_TIMEOUT": "2"}
    )
    try:
        ids = _traffic(srv, "hung", 10)
        _until("an upload hanging on the store", lambda: hung.held)
        ids += _traffic(srv, "last", 5)  # the open segment's records, behind the hanging upload
        # the server stops gracefully (SIGTERM, not the SIGKILL that follows 15 s later), a hung upload and all
        assert srv.stop() in GRACEFUL
    finally:
        srv.stop(signal.SIGKILL)
        hung.close()
    local = home / "feedback" / "iris"
    assert {r["request_id"] for _, r in read_store(local) if r["kind"] == "prediction"} == set(ids)
    said = lambda: any("not shipped to s3://" in ln and "stay on disk" in ln for ln in srv.lines)  # noqa: E731
    _until("the stop said so", said, 10)

    nxt = _serve(iris_artifact, home, f"s3://{BUCKET}/{prefix}", s3_server, "--ship-interval", "1h")
    try:  # the next server on that disk ships what the stopped one left, without waiting for its interval
        _until("the left segments shipped at the next start", lambda: set(ids) <= _shipped_ids(s3_server, prefix))
    finally:
        assert nxt.stop() in GRACEFUL


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ship-interval", "0"], {}, "--ship-interval: invalid interval '0' (expected a positive number"),
        ([], {"LEGION_SHIP_INTERVAL": "soon"}, "LEGION_SHIP_INTERVAL='soon' is not valid (expected a duration"),
        ([], {"LEGION_SERVER_ID": "../x"}, "LEGION_SERVER_ID='../x' is not valid (expected 1-128 letters"),
        ([], {"LEGION_STORE_URL": "nosuch://bucket/x"}, "LEGION_STORE_URL='nosuch://bucket/x' is not valid"),
    ],
)
def test_serve_refuses_bad_shipping_settings_before_binding(
    iris_artifact: Path, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", "serve", str(iris_artifact), "--port", "0", "--no-auth", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LEGION_HOME": str(tmp_path / "home"), **env},
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "listening on" not in done.stdout
