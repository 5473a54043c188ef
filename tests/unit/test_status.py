"""Statuses are StrEnums that store the words the registry always held, and refuse any other word."""

from __future__ import annotations

import json

import pytest

from legion_ci.core.registry import Registry
from legion_ci.core.status import ACTIVE_DEPLOYMENT, DeploymentStatus, RunStatus, StageStatus
from legion_ci.pipeline.stages.base import StageResult
from legion_ci.reports.model import ReportStatus


def test_the_stored_words_are_unchanged() -> None:
    assert [s.value for s in StageStatus] == ["pending", "running", "passed", "skipped", "halted", "failed", "error"]
    assert [s.value for s in RunStatus] == ["running", "passed", "halted", "failed", "error"]
    assert [s.value for s in DeploymentStatus] == ["starting", "serving", "stopped", "rolled-back"]
    assert "error" in {s.value for s in ReportStatus} and "halted" in {s.value for s in ReportStatus}
    assert json.dumps({"status": StageStatus.PASSED}) == '{"status": "passed"}'
    assert f"{RunStatus.FAILED}" == "failed"


def test_what_a_status_means() -> None:
    assert {s for s in StageStatus if s.satisfied} == {StageStatus.PASSED, StageStatus.SKIPPED, StageStatus.HALTED}
    assert {s for s in StageStatus if not s.finished} == {StageStatus.PENDING, StageStatus.RUNNING}
    assert {s for s in DeploymentStatus if s.active} == set(ACTIVE_DEPLOYMENT)


def test_an_unknown_word_is_refused_where_it_enters() -> None:
    with pytest.raises(ValueError, match="'paused' is not a valid StageStatus"):
        StageResult("paused", "a stage has no such status")  # type: ignore[arg-type]
    assert StageResult("passed", "read from JSON").status is StageStatus.PASSED  # type: ignore[arg-type]


def test_records_read_back_as_members(registry: Registry) -> None:
    registry.ensure_run("r1", "m", "/nowhere", "push")
    registry.record_stage("r1", "train", StageStatus.ERROR, "train.py exited with 1")
    registry.set_run_status("r1", RunStatus.FAILED)
    assert registry.stages("r1")["train"].status is StageStatus.ERROR
    assert registry.run("r1").status is RunStatus.FAILED
    with pytest.raises(ValueError):
        registry.record_stage("r1", "gate", "paused")  # type: ignore[arg-type]
    assert "gate" not in registry.stages("r1")


def test_a_word_this_version_does_not_know_reads_as_itself(registry: Registry) -> None:
    """A registry row written by hand or by another version must not break every read of the registry."""
    registry.ensure_run("r1", "m", "/nowhere", "push")
    registry.record_stage("r1", "train", StageStatus.PASSED)
    with registry.tx() as conn:
        conn.exec_driver_sql("UPDATE stage_results SET status = 'paused' WHERE run_id = 'r1'")
    record = registry.stages("r1")["train"]
    assert record.status == "paused" and f"{record.status}" == "paused"
    assert not record.status.satisfied and record.status.finished
    assert record.status not in list(StageStatus)
