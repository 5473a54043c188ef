"""The runner enforces Stage.needs, through the real CLI in fresh processes: a stage whose needs did not pass
in its run, or given a run id that does not exist, refuses with a clear error and writes nothing; a
mistyped --run-id leaves no phantom run behind for "the latest run" to pick up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.core.status import RunStatus, StageStatus


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    env["LEGION_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=120
    )


def runs(home: Path) -> list[dict[str, Any]]:
    done = cli(home, "runs", "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def trained_run(home: Path, iris_dir: Path) -> str:
    """A run of iris whose train stage passed (recorded as the train stage records it), nothing after."""
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        registry.ensure_run("iris-good", "iris", str(iris_dir), "push")
        registry.record_stage("iris-good", "train", StageStatus.PASSED, "trained iris 1.0.0", {"version_id": 1})
    finally:
        registry.close()
    return "iris-good"


@pytest.mark.parametrize("stage", ["gate", "perf", "package", "deploy", "smoke", "promote", "rollback"])
def test_a_mistyped_run_id_is_refused_and_creates_no_run(
    home: Path, iris_dir: Path, trained_run: str, stage: str
) -> None:
    before = runs(home)
    done = cli(home, stage, str(iris_dir), "--run-id", "iris-goood")
    assert done.returncode == 2, done.stderr
    assert f"{stage}: no run 'iris-goood'" in done.stderr and "nothing was recorded" in done.stderr
    assert "--run-id iris-goood" in done.stderr and "legion-ci runs" in done.stderr
    assert runs(home) == before  # no phantom: "the latest run" is still the real one
    assert [r["run_id"] for r in runs(home)] == [trained_run]


def test_a_mistyped_run_id_without_a_model_dir_is_refused_too(home: Path, trained_run: str) -> None:
    done = cli(home, "rollback", "--run-id", "nope")
    assert done.returncode == 2 and "rollback: no run 'nope'" in done.stderr, done.stderr
    assert "legion-ci train MODEL_DIR --run-id nope" in done.stderr
    assert [r["run_id"] for r in runs(home)] == [trained_run]


def test_a_stage_whose_needs_did_not_pass_refuses_before_writing_anything(
    home: Path, iris_dir: Path, trained_run: str
) -> None:
    done = cli(home, "deploy", str(iris_dir), "--run-id", trained_run)
    assert done.returncode == 2, done.stderr
    assert (
        f"deploy: needs stage 'gate' (not run) and stage 'perf' (not run) of run '{trained_run}' to have passed; "
        "nothing was recorded" in done.stderr
    )
    assert f"legion-ci gate {iris_dir} --run-id {trained_run}" in done.stderr
    (run,) = runs(home)
    assert run["status"] == RunStatus.RUNNING and run["stages"] == {"train": "passed"}  # not marked failed


def test_the_latest_run_default_is_checked_the_same_way(home: Path, iris_dir: Path, trained_run: str) -> None:
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        registry.record_stage(trained_run, "gate", StageStatus.FAILED, "accuracy 0.5 below 0.9")
    finally:
        registry.close()
    done = cli(home, "perf", str(iris_dir))  # no --run-id: the model's latest run
    assert done.returncode == 2
    assert f"perf: needs stage 'gate' (failed) of run '{trained_run}'" in done.stderr, done.stderr
    (run,) = runs(home)
    assert run["stages"] == {"train": "passed", "gate": "failed"} and run["status"] == "running"


def test_a_first_stage_may_start_a_run_under_a_new_id(home: Path, iris_dir: Path) -> None:
    done = cli(home, "validate", str(iris_dir), "--run-id", "iris-new")
    assert done.returncode == 0, done.stderr
    (run,) = runs(home)
    assert run["run_id"] == "iris-new" and run["stages"] == {"validate": "passed"}


def test_statuses_are_stored_as_the_same_words(home: Path, iris_dir: Path, trained_run: str) -> None:
    """An existing registry reads the same: the enums store the strings the registry always held."""
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        with registry.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT status FROM stage_results WHERE run_id = 'iris-good'").scalar()
            run_status = conn.exec_driver_sql("SELECT status FROM runs WHERE id = 'iris-good'").scalar()
        assert (stored, run_status) == ("passed", "running")
        record = registry.stages(trained_run)["train"]
        assert record.status is StageStatus.PASSED and record.status.satisfied
    finally:
        registry.close()


def test_a_first_stage_without_a_model_dir_cannot_start_a_run(home: Path) -> None:
    done = cli(home, "train", "--run-id", "iris-new")
    assert done.returncode == 2 and "no run 'iris-new'" in done.stderr, done.stderr
    assert runs(home) == []
