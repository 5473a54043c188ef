"""`legion-ci runs` and `legion-ci runs show`: run ids never cut (at 80 columns, piped), stages in the graph's
order, --json for scripts, and the URIs of the reports a run kept in the store (local folder and S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.core.status import StageStatus
from legion_ci.core.store import RunOutputs, Store
from tests.s3 import BUCKET, S3Server

LONG_ID = "iris-nightly-retrain-jenkins-build-20261201-031500-0123456789abcdef-attempt-2"


def cli(home: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "COLUMNS", "LINES"))}
    env.update({"LEGION_HOME": str(home), **(extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=120
    )


def record_run(home: Path, run_id: str, store_url: str | None = None) -> None:
    """A run whose stages were recorded out of the graph's order (promote first, train last)."""
    registry = Registry.from_settings(load_settings(str(home), store_url=store_url))
    try:
        registry.ensure_run(run_id, "iris", "/models/iris", "push")
        for stage, status, seconds in [
            ("promote", StageStatus.PASSED, 0.5),
            ("gate", StageStatus.FAILED, 3.25),
            ("deploy", StageStatus.PASSED, 2.0),
            ("train", StageStatus.PASSED, 10.0),
        ]:
            registry.record_stage(run_id, stage, status, f"{stage} said so", {}, None, seconds)
    finally:
        registry.close()


def test_runs_piped_at_80_columns_shows_the_whole_id_and_stages_in_graph_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    record_run(home, LONG_ID)
    done = cli(home, "runs", extra={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "iris-nightly" in line)
    assert row.split()[0] == LONG_ID  # whole, on one line: what people copy
    assert row.split()[-4:] == ["train:passed", "gate:failed", "deploy:passed", "promote:passed"]


def test_runs_json_for_scripts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    record_run(home, LONG_ID)
    done = cli(home, "runs", "iris", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert run["run_id"] == LONG_ID and run["model"] == "iris" and run["status"] == "running"
    assert list(run["stages"].items()) == [
        ("train", "passed"),
        ("gate", "failed"),
        ("deploy", "passed"),
        ("promote", "passed"),
    ]


def test_runs_show_prints_stages_durations_and_the_reports_in_a_local_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    record_run(home, "r1")
    gate = home / "runs" / "r1" / "gate"  # the default store is the home: the workspace's reports are in it
    gate.mkdir(parents=True)
    for name in ("report.html", "junit.xml", "summary.json", "scratch.tmp"):
        (gate / name).write_text("x")
    done = cli(home, "runs", "show", "r1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run r1"
    stage_lines = [
        line.split()
        for line in lines
        if line.startswith("  ") and line.split()[0] in {"train", "gate", "deploy", "promote"}
    ]
    assert [(s[0], s[1], s[2]) for s in stage_lines] == [
        ("train", "passed", "10.0s"),
        ("gate", "failed", "3.2s"),
        ("deploy", "passed", "2.0s"),
        ("promote", "passed", "0.5s"),
    ]
    files = [line.strip() for line in lines if line.startswith("      ")]
    root = home.resolve() / "runs" / "r1" / "gate"
    assert files == [str(root / "junit.xml"), str(root / "report.html"), str(root / "summary.json")]
    as_json = json.loads(cli(home, "runs", "show", "r1", "--json").stdout)
    assert [s["stage"] for s in as_json["stages"]] == ["train", "gate", "deploy", "promote"]
    assert as_json["stages"][1]["files"]["report.html"] == str(root / "report.html")


def test_runs_show_prints_s3_uris(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    record_run(home, "r1", url)
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    RunOutputs(Store(url, home)).keep("r1", "gate", [report])
    done = cli(home, "runs", "show", "r1", extra={**s3_server.env, "LEGION_STORE_URL": url})
    assert done.returncode == 0, done.stderr
    assert f"  store {url}/runs/r1" in done.stdout.splitlines()
    assert f"      {url}/runs/r1/gate/report.html" in done.stdout.splitlines()


def test_runs_show_needs_one_known_run_id(tmp_path: Path) -> None:
    home = tmp_path / "home"
    record_run(home, "r1")
    missing = cli(home, "runs", "show")
    assert missing.returncode == 2 and "`legion-ci runs show` takes one RUN_ID, got 0" in missing.stderr
    unknown = cli(home, "runs", "show", "r9")
    assert unknown.returncode == 2 and "no run 'r9'" in unknown.stderr
    extra = cli(home, "runs", "iris", "diabetes")
    assert extra.returncode == 2 and "takes one MODEL (or `show RUN_ID`), got 'iris diabetes'" in extra.stderr
    none = cli(home, "runs", "--limit", "0")
    assert none.returncode == 2 and "--limit 0: expected a positive number of runs" in none.stderr
