"""The feedback loop end to end: SIGKILL under load loses no acknowledged request; export joins truth."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

from legion_ci.feedback.capture import read_store

from .conftest import ROOT, Server, start_server

API = "/api/model/iris/1.0.0"
ROW = [5.1, 3.5, 1.4, 0.2]


def _captured(home: Path) -> dict[str, dict]:
    return {r["request_id"]: r for _, r in read_store(home / "feedback" / "iris") if r.get("kind") == "prediction"}


def test_sigkill_under_load_keeps_every_acknowledged_request(iris_artifact: Path, tmp_path: Path) -> None:
    srv = start_server(iris_artifact, tmp_path / "home", "--no-auth")
    acknowledged: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            for i in range(20_000):
                if stop.is_set():
                    return
                rid = f"kill-{k}-{i}"
                try:
                    answer = c.post(f"{API}/invoke", json={"instances": [ROW]}, headers={"X-Request-ID": rid})
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    acknowledged.append(rid)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 400 and time.monotonic() < deadline:
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
    srv.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert srv.proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 400
    captured = _captured(tmp_path / "home")
    missing = [rid for rid in acknowledged if rid not in captured]
    assert not missing, f"{len(missing)} acknowledged requests not in the store, e.g. {missing[:3]}"
    record = captured[acknowledged[0]]
    assert record["inputs"] == [ROW] and record["outputs"] == [0] and record["version"] == "1.0.0"
    assert record["latency_ms"] > 0 and record["ts"] > 0


def test_feedback_export_cli_joins_ground_truth(open_server: Server, tmp_path: Path) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4]]
    with httpx.Client(base_url=open_server.url) as c:
        assert c.post(f"{API}/invoke", json={"instances": rows}, headers={"X-Request-ID": "exp-1"}).status_code == 200
        assert (
            c.post(f"{API}/invoke", json={"instances": [rows[0]]}, headers={"X-Request-ID": "exp-2"}).status_code == 200
        )
        assert c.post(f"{API}/feedback", json={"request_id": "exp-1", "ground_truth": [0, 1]}).json()["matched"]
        assert c.post(f"{API}/feedback", json={"request_id": "exp-2", "ground_truth": 0}).json()["matched"]
    out = tmp_path / "fb.csv"
    env = {"LEGION_HOME": str(open_server.home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", "feedback", "export", "iris", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"to {out}" in done.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
        "target",
    ]
    got = sorted(map(tuple, frame.to_numpy().tolist()))
    assert (5.1, 3.5, 1.4, 0.2, 0.0) in got and (6.7, 3.1, 4.4, 1.4, 1.0) in got
    bad = subprocess.run(
        [sys.executable, "-m", "legion_ci", "feedback", "export", "iris", "--since", "yesterday"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "--since: 'yesterday' is not an ISO time" in bad.stderr


def test_no_capture_with_two_workers(iris_artifact: Path, tmp_path: Path) -> None:
    srv = start_server(iris_artifact, tmp_path / "home", "--no-auth", "--no-capture", "--workers", "2")
    try:
        with httpx.Client(base_url=srv.url) as c:
            for i in range(20):
                answer = c.post(f"{API}/invoke", json={"instances": [ROW]}, headers={"X-Request-ID": f"nc-{i}"})
                assert answer.status_code == 200 and answer.json()["predictions"] == [0]
            text = c.get("/metrics").text
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('legion_requests_total{endpoint="invoke"')
        )
        assert total == 20  # summed over both workers
    finally:
        assert srv.stop() == 0
    assert _captured(tmp_path / "home") == {}


def _read_bytes(pid: int) -> int:
    """Bytes the process has read through read() and friends (/proc/PID/io rchar)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_feedback_matching_does_not_rescan_the_store_per_item(iris_artifact: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / "feedback" / "iris"
    folder.mkdir(parents=True)
    line = (
        '{"kind":"prediction","request_id":"old-%d","ts":1.0,"model":"iris","version":"1.0.0",'
        '"inputs":[[5.1,3.5,1.4,0.2]],"outputs":[0],"latency_ms":0.1}\n'
    )
    header = '{"kind":"segment","model":"iris","version":"1.0.0","features":["a","b","c","d"],"target":"target"}\n'
    store_bytes = 0
    for s in range(4):  # 4 closed segments of another (gone) server, ~6 MB in all
        text = header + "".join(line % (s * 10_000 + i) for i in range(10_000))
        (folder / f"seg-20260101T00000{s}-1-00000000{s}.jsonl").write_text(text)
        store_bytes += len(text)
    srv = start_server(iris_artifact, home, "--no-auth")
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            known = c.post(f"{API}/feedback", json={"request_id": "old-39999", "ground_truth": 0}).json()
            assert known["matched"]
            before = _read_bytes(srv.proc.pid)
            items = [{"request_id": f"unknown-{i}", "ground_truth": 0} for i in range(200)]
            answer = c.post(f"{API}/feedback", json=items)
            assert answer.status_code == 200 and answer.json()["accepted"] == 200
            assert not any(r["matched"] for r in answer.json()["results"])
            read = _read_bytes(srv.proc.pid) - before
            assert read < store_bytes, f"{read} bytes read for 200 unknown ids over a {store_bytes}-byte store"
            assert c.post(f"{API}/invoke", json={"instances": [ROW]}).status_code == 200
    finally:
        srv.stop()


def test_feedback_labels_are_checked_against_the_models_classes(open_server: Server) -> None:
    """Before: "class_7" for an integer-class classifier was stored, and the next retrain crashed."""
    with httpx.Client(base_url=open_server.url) as c:
        assert c.post(f"{API}/invoke", json={"instances": [ROW]}, headers={"X-Request-ID": "lab-1"}).status_code == 200
        bad = c.post(f"{API}/feedback", json={"request_id": "lab-1", "ground_truth": "class_7"})
        assert bad.status_code == 422, bad.text
        assert "body.ground_truth: 'class_7' is not a label of model iris" in bad.json()["error"]
        assert "one of its classes: 0, 1, 2" in bad.json()["error"]
        assert c.post(f"{API}/feedback", json={"request_id": "lab-x", "ground_truth": True}).status_code == 422
        batch = [{"request_id": "lab-1", "ground_truth": 2}, {"request_id": "lab-1", "ground_truth": [0, "x"]}]
        refused = c.post(f"{API}/feedback", json=batch)
        assert refused.status_code == 422 and "[1].ground_truth" in refused.json()["error"]
        good = c.post(f"{API}/feedback", json={"request_id": "lab-1", "ground_truth": 1})
        assert good.status_code == 200 and good.json()["matched"]
    stored = [r for _, r in read_store(open_server.home / "feedback" / "iris") if r.get("request_id") == "lab-1"]
    assert [r["ground_truth"] for r in stored if r["kind"] == "feedback"] == [1]  # nothing of the refused batch


def test_feedback_with_the_wrong_number_of_labels_is_refused_when_the_request_is_known(
    open_server: Server, tmp_path: Path
) -> None:
    rows = [ROW] * 10
    with httpx.Client(base_url=open_server.url) as c:
        assert c.post(f"{API}/invoke", json={"instances": rows}, headers={"X-Request-ID": "len-10"}).status_code == 200
        good = c.post(f"{API}/feedback", json={"request_id": "len-10", "ground_truth": [0] * 10})
        assert good.status_code == 200 and good.json()["matched"]
        short = c.post(f"{API}/feedback", json={"request_id": "len-10", "ground_truth": [1, 2]})
        assert short.status_code == 422, short.text
        assert "2 label(s) for a request of 10 row(s)" in short.json()["error"]
        one = c.post(f"{API}/feedback", json={"request_id": "len-10", "ground_truth": 1})
        assert one.status_code == 422
        unknown = c.post(f"{API}/feedback", json={"request_id": "len-unknown", "ground_truth": [1, 2]})
        assert unknown.status_code == 200 and not unknown.json()["matched"]  # cannot be checked: stored
    out = tmp_path / "fb.csv"
    env = {"LEGION_HOME": str(open_server.home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", "feedback", "export", "iris", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "left out: " in done.stdout and "unmatched (no prediction with that request id" in done.stdout
    frame = pd.read_csv(out)
    assert (frame.iloc[:, :4].to_numpy().tolist().count(ROW)) >= 10 and set(frame["target"]) <= {0, 1, 2}
