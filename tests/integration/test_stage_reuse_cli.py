"""Stage reuse through the real CLI (issue 12, item 13): a gate or perf test whose inputs (the artifact, its
spec section, the production version) are unchanged since it passed in an earlier run is not done again; it
says so, points at that run, and brings its reports along. Any changed input, or --no-reuse, redoes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from tests.s3 import BUCKET, S3Server


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    full.update(env or {})
    full["LEGION_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=full, timeout=600
    )


def stage(
    home: Path, name: str, model: Path, run_id: str, *extra: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    done = cli(home, name, str(model), "--run-id", run_id, "--json", *extra, env=env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def edit_spec(model: Path, change: Any) -> None:
    spec = yaml.safe_load((model / "legion.yaml").read_text())
    change(spec)
    (model / "legion.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture
def model(iris_dir: Path) -> Path:
    edit_spec(iris_dir, lambda s: s["perf"].update(users=2, duration="2s", sla={"p95_ms": 2000}))
    return iris_dir


def test_an_unchanged_gate_and_perf_are_reused_and_say_so(tmp_path: Path, model: Path) -> None:
    home = tmp_path / "home"
    for run_id in ("a", "b"):
        stage(home, "train", model, run_id)
    first_gate, first_perf = stage(home, "gate", model, "a"), stage(home, "perf", model, "a")
    assert "reused" not in first_gate["summary"] and "reused_from" not in first_gate["outputs"]

    gate = stage(home, "gate", model, "b")
    assert gate["status"] == "passed" and gate["summary"].startswith("reused from run a: ")
    assert gate["summary"].endswith(first_gate["summary"])
    assert gate["outputs"]["reused_from"] == "a"
    perf = stage(home, "perf", model, "b")
    assert perf["summary"] == f"reused from run a: {first_perf['summary']}" and perf["outputs"]["reused_from"] == "a"

    runs_dir = load_settings(str(home)).runs_dir
    for report in ("gate/report.html", "gate/junit.xml", "gate/summary.json", "perf/junit.xml", "perf/report.html"):
        assert (runs_dir / "b" / report).is_file(), report  # where Jenkins publishes this run's reports
    assert all(str(runs_dir / "b" / "gate") in path for path in gate["outputs"]["reports"].values())

    redo = stage(home, "gate", model, "b", "--no-reuse")
    assert "reused" not in redo["summary"] and "reused_from" not in redo["outputs"]

    # legion.yaml is part of the artifact's source: a changed gate section is a new artifact, so both redo.
    edit_spec(model, lambda s: s["gate"]["thresholds"].update(accuracy={"min": 0.85}))
    stage(home, "train", model, "c")
    assert "reused" not in stage(home, "gate", model, "c")["summary"]
    assert "reused_from" not in stage(home, "perf", model, "c")["outputs"]

    registry = Registry.from_settings(load_settings(str(home)))
    try:
        newest = registry.versions("iris")[-1]
        registry.set_alias("iris", "production", newest.id)  # production moves: the comparison changes
    finally:
        registry.close()
    stage(home, "train", model, "d")  # the same artifact as run c's
    assert "reused" not in stage(home, "gate", model, "d")["summary"]
    assert stage(home, "perf", model, "d")["outputs"]["reused_from"] == "c"  # production is no input of perf


def test_a_fresh_agent_reuses_a_gate_through_the_store(tmp_path: Path, model: Path, s3_server: S3Server) -> None:
    """Two agents (two LEGION_HOMEs) sharing the registry and an S3 store: the second never ran the first
    run's gate, and still reuses it, its reports fetched from the store into its own run folder."""
    env = {
        **s3_server.env,
        "LEGION_STORE_URL": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
        "LEGION_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
    }
    first, fresh = tmp_path / "agent-1", tmp_path / "agent-2"
    for run_id in ("a", "b"):
        stage(first, "train", model, run_id, env=env)
    first_gate = stage(first, "gate", model, "a", env=env)
    gate = stage(fresh, "gate", model, "b", env=env)
    assert gate["summary"] == f"reused from run a: {first_gate['summary']}" and gate["outputs"]["reused_from"] == "a"
    runs_dir = load_settings(str(fresh)).runs_dir
    for report in ("gate/report.html", "gate/junit.xml", "gate/summary.json"):
        assert (runs_dir / "b" / report).is_file(), report
    assert not (runs_dir / "a").exists()  # nothing of run a was ever on this agent
