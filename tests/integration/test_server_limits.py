"""Connection-level limits of the real servers against hostile clients: oversized headers (431), slow and
idle requests (408, closed), too many connections (503), oversized bodies readable by clients that write
first (413), and `listening on` only once connections are accepted."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, Server, start_server

API = "/api/model/iris/1.0.0"
ROW = [5.1, 3.5, 1.4, 0.2]
LIMITS = {
    "LEGION_HTTP_REQUEST_TIMEOUT": "2",
    "LEGION_HTTP_IDLE_TIMEOUT": "2",
    "LEGION_HTTP_MAX_CONNECTIONS": "40",
    "LEGION_HTTP_MAX_HEADER_BYTES": "16384",
}


@pytest.fixture(scope="module")
def limited(iris_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        iris_artifact, tmp_path_factory.mktemp("home"), "--no-auth", "--max-body-bytes", "4096", env=LIMITS
    )
    yield srv
    srv.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            raise AssertionError(f"connection reset after {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk


def _invoke_works(server: Server) -> None:
    answer = httpx.post(f"{server.url}{API}/invoke", json={"instances": [ROW]}, timeout=30)
    assert answer.status_code == 200 and answer.json()["predictions"] == [0]


@pytest.mark.parametrize("size", [20_000, 600_000])
def test_oversized_request_headers_get_431_written_before_read(limited: Server, size: int) -> None:
    request = (
        f"POST {API}/invoke HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * size}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()
    with _connect(limited) as sock:
        sock.sendall(request)  # the whole request first, like urllib, then read
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"over the limit of 16384 bytes" in answer
    _invoke_works(limited)


def test_a_long_request_line_gets_431(limited: Server) -> None:
    with _connect(limited) as sock:
        sock.sendall(f"GET /health/live?{'q' * 40_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert _read_all(sock).startswith(b"HTTP/1.1 431 ")


def test_slow_and_idle_connections_are_timed_out(limited: Server) -> None:
    sockets = []
    for k in range(30):
        sock = _connect(limited)
        if k % 3 == 1:
            sock.sendall(f"POST {API}/invoke HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())  # headers never end
        elif k % 3 == 2:  # headers complete, body never does
            sock.sendall(f"POST {API}/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        sockets.append(sock)  # k % 3 == 0: connects and says nothing
    _invoke_works(limited)  # the half-open connections do not block others
    answers = []
    for sock in sockets:
        sock.settimeout(60)  # generous: the server's limits are 2 s; this only bounds a hang
        answers.append(_read_all(sock))
        sock.close()
    started = [a for i, a in enumerate(answers) if i % 3]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in started), [a[:60] for a in started]
    assert all(a in (b"", b"") or a.startswith(b"HTTP/1.1 408 ") for a in answers[::3])
    _invoke_works(limited)


def test_connections_over_the_cap_get_503(iris_artifact: Path, tmp_path: Path) -> None:
    srv = start_server(iris_artifact, tmp_path / "home", "--no-auth", env={"LEGION_HTTP_MAX_CONNECTIONS": "8"})
    try:
        held = [_connect(srv) for _ in range(8)]
        time.sleep(0.5)  # let the server register them (not a timing assertion)
        with _connect(srv) as extra:
            extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _invoke_works(srv)
                break
            except AssertionError:
                time.sleep(0.2)
        _invoke_works(srv)
    finally:
        srv.stop()


@pytest.mark.parametrize("size", [5_000, 300_000, 3_000_000])
def test_a_413_reaches_a_client_that_writes_the_whole_body_first(limited: Server, size: int) -> None:
    body = json.dumps({"instances": [ROW] * (size // 20)}).encode()
    request = urllib.request.Request(
        f"{limited.url}{API}/invoke", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert "over the limit of 4096 bytes" in json.loads(caught.value.read())["error"]


def test_listening_on_means_connections_are_accepted(iris_artifact: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LEGION_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1", "LEGION_AUTH": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "legion_ci", "serve", str(iris_artifact), "--port", "0", "--no-auth"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on "):
                url = line.split()[-1]
                break
        else:
            raise AssertionError("the server exited without announcing itself")
        # at once, no retry: the announcement promises the socket accepts
        assert httpx.get(f"{url}/health/live", timeout=60).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
