"""The issue's headline: train on agent A, gate on agent B with an empty workspace, sharing only the
registry and an S3 store (the stand-in server); a tampered object stops the next stage with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from legion_ci.core.registry import Registry
from tests.s3 import BUCKET, S3Server


def _agent(workspace: Path, shared: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **shared, "LEGION_HOME": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _shared(s3_server: S3Server, tmp_path: Path) -> tuple[dict[str, str], str]:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    registry = f"sqlite:///{tmp_path / 'shared-registry.db'}"
    return {**s3_server.env, "LEGION_STORE_URL": url, "LEGION_REGISTRY_URL": registry}, url


def test_gate_on_another_agent_takes_the_artifact_from_the_store(
    s3_server: S3Server, tmp_path: Path, iris_dir: Path
) -> None:
    shared, url = _shared(s3_server, tmp_path)
    ws_a, ws_b = tmp_path / "ws-a", tmp_path / "ws-b"
    trained = _agent(ws_a, shared, "train", str(iris_dir), "--run-id", "r1", "--flow", "push")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert not (ws_a / "artifacts").exists()  # the artifact went to the store, not the workspace
    shutil.rmtree(ws_a)  # agent A's pod is gone

    gated = _agent(ws_b, shared, "gate", str(iris_dir), "--run-id", "r1", "--flow", "push")
    assert gated.returncode == 0, gated.stdout + gated.stderr
    cached = list((ws_b / "cache" / "artifacts" / "iris").iterdir())
    assert len(cached) == 1 and (cached[0] / "manifest.json").is_file()
    registry = Registry(shared["LEGION_REGISTRY_URL"])
    try:
        assert [v.path for v in registry.versions("iris")] == [f"{url}/artifacts/iris/{cached[0].name}"]
    finally:
        registry.close()


def test_a_tampered_object_stops_the_next_stage_naming_the_uri(
    s3_server: S3Server, tmp_path: Path, iris_dir: Path
) -> None:
    shared, url = _shared(s3_server, tmp_path)
    trained = _agent(tmp_path / "ws-a", shared, "train", str(iris_dir), "--run-id", "r1", "--flow", "push")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    model_key = next(k for k in keys if k.endswith("/model.skops"))
    client.put_object(Bucket=BUCKET, Key=model_key, Body=b"tampered")

    gated = _agent(tmp_path / "ws-b", shared, "gate", str(iris_dir), "--run-id", "r1", "--flow", "push")
    uri = f"s3://{BUCKET}/{model_key.rsplit('/', 1)[0]}"
    assert gated.returncode == 2, gated.stdout + gated.stderr
    assert f"{uri}: file model.skops has sha256" in gated.stderr
    assert "refusing to use it" in gated.stderr


def _capture_feedback(workspace: Path, rows: int) -> None:
    """Predictions with their ground truth in a workspace's capture store, as a served iris would write them."""
    import time

    from sklearn.datasets import load_iris

    from legion_ci.feedback.capture import CaptureWriter

    frame = load_iris(as_frame=True).frame
    features = [str(c) for c in frame.columns if c != "target"]
    writer = CaptureWriter(workspace / "feedback" / "iris", "iris", "1.0.0", features, "target", fsync_interval=0.05)
    for i in range(rows):
        row = frame.iloc[i * 7]
        inputs = [[float(row[f]) for f in features]]
        assert writer.prediction(f"fb-{i}", inputs, [int(row["target"])], None, 0.1, time.time())
        assert writer.feedback(f"fb-{i}", int(row["target"]), None, True)
    writer.close()


def test_a_retrain_gate_on_another_agent_checks_the_feedback_train_used_and_keeps_its_reports(
    s3_server: S3Server, tmp_path: Path, iris_dir: Path
) -> None:
    """Issue 10 item 3: what gate reads from train (the exported feedback) comes from the store, its reports
    are kept in the store, and `runs show` on a third agent prints their URIs."""
    shared, url = _shared(s3_server, tmp_path)
    ws_a, ws_b = tmp_path / "ws-a", tmp_path / "ws-b"
    _capture_feedback(ws_a, 10)
    trained = _agent(ws_a, shared, "train", str(iris_dir), "--run-id", "r2", "--flow", "retrain")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "feedback: wrote 10 rows (10 labelled requests)" in trained.stdout + trained.stderr
    shutil.rmtree(ws_a)  # agent A's pod, its feedback.csv with it, is gone

    gated = _agent(ws_b, shared, "gate", str(iris_dir), "--run-id", "r2", "--flow", "retrain")
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert f"file(s) in the store: {url}/runs/r2/gate" in gated.stdout + gated.stderr
    shutil.rmtree(ws_b)

    prefix = url.removeprefix(f"s3://{BUCKET}/")
    client = s3_server.client()
    summary = json.loads(client.get_object(Bucket=BUCKET, Key=f"{prefix}/runs/r2/gate/summary.json")["Body"].read())
    data = next(c for c in summary["checks"] if c["name"] == "no NaN or infinite values in the training data")
    assert data["message"].startswith("160 rows x 5 columns")  # 150 iris rows and the 10 of feedback train used

    shown = _agent(tmp_path / "ws-c", shared, "runs", "show", "r2")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")][2:] == [
        "train",
        "gate",
    ]
    for name in ("train/feedback.csv", "gate/junit.xml", "gate/report.html", "gate/summary.json"):
        assert f"      {url}/runs/r2/{name}" in lines
