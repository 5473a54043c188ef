"""Every `serving:` setting of legion.yaml reaches every server the local deploy starts (issue 12, item 6):
through the real `legion-ci deploy` stage in a subprocess, two replicas, each asked over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from legion_ci.core.artifact import Artifact
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.core.status import StageStatus
from legion_ci.deploy import local_router
from tests.integration.conftest import build_iris_artifact


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    env["LEGION_HOME"] = str(home)
    env[local_router.ENV_PORT] = "0"  # any free port: never a router another test or a person runs
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def deployed(tmp_path: Path, iris_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """iris deployed by `legion-ci deploy` with serving.max_rows 500 and a 2 MB body limit, two replicas."""
    home = tmp_path / "home"
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["serving"] = {"max_rows": 500, "max_body_bytes": 2_000_000, "capture": {"enabled": False}}
    spec["deploy"].update(replicas=2, auth=False)
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        folder = build_iris_artifact(tmp_path / "artifacts" / "iris", version="1.0.0")
        version = registry.register_version(Artifact.open(folder).manifest, str(folder))[0]
        registry.ensure_run("r1", "iris", str(iris_dir), "push")
        registry.record_stage("r1", "train", StageStatus.PASSED, "trained", {"version_id": version.id})
        for name in ("gate", "perf"):
            registry.record_stage("r1", name, StageStatus.PASSED, "passed", {})
    finally:
        registry.close()
    done = cli(home, "deploy", str(iris_dir), "--run-id", "r1")
    try:
        assert done.returncode == 0, done.stderr
        listed = cli(home, "deployments", "list", "iris", "--json")
        assert listed.returncode == 0, listed.stderr
        (deployment,) = json.loads(listed.stdout)
        yield deployment["endpoints"]
    finally:
        cli(home, "undeploy", "iris")
        cli(home, "router", "stop")


def test_every_replica_serves_the_specs_limits(deployed: list[dict[str, Any]]) -> None:
    assert len(deployed) == 2
    row = [5.1, 3.5, 1.4, 0.2]
    for endpoint in deployed:
        base = f"{endpoint['url']}/api/model/iris/1.0.0"
        serving = httpx.get(f"{base}/info", timeout=30).json()["serving"]
        assert (serving["max_rows"], serving["max_body_bytes"], serving["capture"]) == (500, 2_000_000, False)
        too_many = httpx.post(f"{base}/invoke", json={"instances": [row] * 600}, timeout=30)
        assert too_many.status_code in (413, 422), too_many.text
        assert "500" in too_many.text
        assert httpx.post(f"{base}/invoke", json={"instances": [row] * 500}, timeout=30).status_code == 200
