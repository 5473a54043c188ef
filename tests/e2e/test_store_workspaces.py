"""The issue's headline: train on agent A, gate on agent B with an empty workspace, sharing only the
registry and an S3 store (the stand-in server); a tampered object stops the next stage with exit 2."""

from __future__ import annotations

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
