"""`legion-ci jenkins sync|build|status` against JenkinsDouble (tests/doubles/jenkins.py): python-jenkins
talks real HTTP to a stateful stand-in of the Jenkins REST endpoints, with auth and CSRF crumbs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from legion_ci.cli import main
from tests.doubles.jenkins import CRUMB_FIELD, JenkinsDouble

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TOKEN = "tok-9f8e7d6c5b4a-never-print-me"
SCM = ["--scm-url", "https://git.example.com/ml/models.git"]


@pytest.fixture
def jenkins(monkeypatch: pytest.MonkeyPatch) -> Iterator[JenkinsDouble]:
    with JenkinsDouble(user="legion-bot", token=TOKEN) as double:
        monkeypatch.setenv("JENKINS_URL", double.url)
        monkeypatch.setenv("JENKINS_USER", "legion-bot")
        monkeypatch.setenv("JENKINS_TOKEN", TOKEN)
        yield double


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A repository with two models (copies of fixture specs) that tests may edit or remove."""
    repo = tmp_path / "repo"
    for case, name in (("jenkins-basic", "basic"), ("jenkins-no-schedule", "no-schedule")):
        shutil.copytree(FIXTURES / case / "input", repo / "models" / name)
    (repo / ".git").mkdir()  # marks the repository root for render
    return repo


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert TOKEN not in text, "the API token must never be printed"
    return code, text


def sync(models: Path, *extra: str) -> list[str]:
    dirs = [str(p) for p in sorted((models / "models").iterdir())]
    return ["jenkins", "sync", *dirs, *SCM, *extra]


def test_dry_run_prints_the_plan_and_changes_nothing(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(sync(models, "--dry-run"), capsys)
    assert code == 0
    assert "6 to create, 0 to update, 0 to delete, 0 unchanged" in out
    assert "+ create    folder basic" in out and "+ create    job    basic/basic-retrain" in out
    assert "dry run: nothing changed" in out
    assert jenkins.posts() == [] and jenkins.items == {}


def test_sync_twice_the_second_plan_is_empty(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sync(models), capsys)[0] == 0
    assert sorted(jenkins.items) == [
        "basic",
        "basic/basic-pipeline",
        "basic/basic-retrain",
        "basic/basic-rollout",
        "no-schedule",
        "no-schedule/no-schedule-pipeline",
    ]
    retrain = jenkins.items["basic/basic-retrain"].config
    assert "<spec>H H(0-5) * * 1-5</spec>" in retrain
    before = len(jenkins.posts())
    code, out = run(sync(models), capsys)
    assert code == 0
    assert "0 to create, 0 to update, 0 to delete, 6 unchanged" in out and "nothing to do" in out
    assert len(jenkins.posts()) == before, "an idempotent sync sends no POST"


def test_a_changed_spec_updates_only_its_jobs(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sync(models), capsys)
    spec = models / "models" / "basic" / "legion.yaml"
    spec.write_text(spec.read_text().replace('"H H(0-5) * * 1-5"', '"H 4 * * *"'))
    code, out = run(sync(models), capsys)
    assert code == 0
    assert "0 to create, 1 to update, 0 to delete, 5 unchanged" in out
    assert "~ update    job    basic/basic-retrain" in out
    assert "<spec>H 4 * * *</spec>" in jenkins.items["basic/basic-retrain"].config


def test_gone_models_are_kept_until_prune(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sync(models, "--platform"), capsys)[0] == 0
    shutil.rmtree(models / "models" / "no-schedule")
    code, out = run(sync(models), capsys)
    assert code == 0 and "2 stale (kept; --prune deletes them)" in out
    assert "no-schedule/no-schedule-pipeline" in jenkins.items
    code, out = run(sync(models, "--prune"), capsys)
    assert code == 0 and "0 to create, 0 to update, 2 to delete" in out
    assert sorted(jenkins.items) == [
        "basic",
        "basic/basic-pipeline",
        "basic/basic-retrain",
        "basic/basic-rollout",
        "legion-platform",
    ]


def test_a_schedule_removed_makes_the_retrain_job_stale(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sync(models), capsys)
    spec = models / "models" / "basic" / "legion.yaml"
    spec.write_text(spec.read_text().replace('schedule:\n  retrain: "H H(0-5) * * 1-5"\n', ""))
    code, out = run(sync(models, "--prune"), capsys)
    assert code == 0 and "- delete    job    basic/basic-retrain  (no longer rendered for this model)" in out
    assert "basic/basic-retrain" not in jenkins.items and "basic" in jenkins.items
    assert "basic/basic-rollout" not in jenkins.items, "no retrain and an immediate rollout: nothing to evaluate"


def test_unmanaged_items_are_taken_over_not_pruned(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jenkins.add_item("basic", "<com.cloudbees.hudson.plugins.folder.Folder/>")
    jenkins.add_item(
        "hand-made",
        "<com.cloudbees.hudson.plugins.folder.Folder><description>mine</description>"
        "</com.cloudbees.hudson.plugins.folder.Folder>",
    )
    code, out = run(sync(models, "--prune"), capsys)
    assert code == 0
    assert "~ update    folder basic  (exists but is not managed by legion-ci: taking it over)" in out
    assert "hand-made" in jenkins.items, "prune never touches what legion-ci did not create"


def test_credentials_from_files_and_their_errors(
    jenkins: JenkinsDouble,
    models: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN"):
        monkeypatch.delenv(var)
    ini = tmp_path / "jenkins.ini"
    ini.write_text(f"[jenkins]\nurl={jenkins.url}\nuser=legion-bot\npassword={TOKEN}\n")
    assert run(sync(models, "--dry-run", "--credentials-file", str(ini)), capsys)[0] == 0
    yml = tmp_path / "jenkins.yaml"
    yml.write_text(json.dumps({"jenkins": {"url": jenkins.url, "user": "legion-bot", "token": TOKEN}}))
    assert run(sync(models, "--dry-run", "--credentials-file", str(yml)), capsys)[0] == 0

    monkeypatch.setenv("JENKINS_TOKEN", "wrong-token")  # the environment overrides the file
    code, out = run(sync(models, "--credentials-file", str(ini)), capsys)
    assert code == 2 and "refused the login (HTTP 401)" in out and "JENKINS_TOKEN" in out
    monkeypatch.delenv("JENKINS_TOKEN")

    code, out = run(sync(models, "--dry-run"), capsys)
    assert code == 2 and "no Jenkins URL: set JENKINS_URL" in out
    monkeypatch.setenv("JENKINS_URL", jenkins.url)
    monkeypatch.setenv("JENKINS_USER", "legion-bot")
    code, out = run(sync(models, "--dry-run"), capsys)
    assert code == 2 and "user and token go together: JENKINS_TOKEN" in out
    bad = tmp_path / "bad.ini"
    bad.write_text("[other]\nurl=x\n")
    code, out = run(sync(models, "--dry-run", "--credentials-file", str(bad)), capsys)
    assert code == 2 and "no [jenkins] section" in out
    assert jenkins.items == {}


def test_no_token_in_argv_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["jenkins", "sync", "--help"])
    text = capsys.readouterr().out
    assert "--token" not in text and "--password" not in text


def test_build_follows_to_the_end_with_parameters(
    jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sync(models), capsys)
    code, out = run(
        [
            "jenkins",
            "build",
            str(models / "models" / "basic"),
            "--param",
            "LEGION_TRAFFIC_WEIGHT=7",
            "--param",
            "LEGION_SKIP_PERF_REASON=load test env down",
            "--poll",
            "0.01",
        ],
        capsys,
    )
    assert code == 0
    assert "started basic/basic-pipeline #1" in out and "Finished: SUCCESS" in out
    build = jenkins.items["basic/basic-pipeline"].builds[0]
    assert build.params["LEGION_TRAFFIC_WEIGHT"] == "7"
    assert build.params["LEGION_SKIP_PERF_REASON"] == "load test env down"
    assert build.params["LEGION_TARGET"] == "local", "unset parameters take the job's defaults"

    jenkins.outcome["basic/basic-retrain"] = "FAILURE"
    code, out = run(["jenkins", "build", "basic", "--job", "retrain", "--poll", "0.01"], capsys)
    assert code == 1 and "basic/basic-retrain #1 finished FAILURE" in out


def test_build_errors(jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["jenkins", "build", "basic", "--poll", "0.01"], capsys)
    assert code == 2 and "has no job 'basic/basic-pipeline' (run `legion-ci jenkins sync` first)" in out
    code, out = run(["jenkins", "build", "basic", "--param", "COLOR=red"], capsys)
    assert code == 2 and "--param 'COLOR' is not a parameter of this job" in out
    code, out = run(["jenkins", "build", "basic", "--param", "novalue"], capsys)
    assert code == 2 and "is not KEY=VALUE" in out
    code, out = run(["jenkins", "build", "basic", "--job", "nightly"], capsys)
    assert code == 2 and "--job 'nightly' is not a job kind (expected one of pipeline, retrain, rollout)" in out


def test_status_shows_the_last_builds(jenkins: JenkinsDouble, models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(sync(models), capsys)
    code, out = run(["jenkins", "status", "basic"], capsys)
    assert code == 0 and "no builds yet" in out
    for _ in range(2):
        run(["jenkins", "build", "basic", "--poll", "0.01"], capsys)
    code, out = run(["jenkins", "status", "basic", "--json"], capsys)
    data = json.loads(out)
    assert data["job"] == "basic/basic-pipeline"
    assert [b["number"] for b in data["builds"]] == [2, 1] and {b["result"] for b in data["builds"]} == {"SUCCESS"}


def test_the_double_checks_auth_and_crumbs(jenkins: JenkinsDouble) -> None:
    """python-jenkins passes these checks above, so it really sent the login and the crumb."""
    assert requests.get(jenkins.url + "api/json", timeout=5).status_code == 401
    auth = ("legion-bot", TOKEN)
    assert requests.post(jenkins.url + "createItem?name=x", data=b"<a/>", auth=auth, timeout=5).status_code == 403
    crumb = requests.get(jenkins.url + "crumbIssuer/api/json", auth=auth, timeout=5).json()["crumb"]
    headers = {CRUMB_FIELD: crumb}
    bad = requests.post(jenkins.url + "createItem?name=x", data=b"<a>", auth=auth, headers=headers, timeout=5)
    assert bad.status_code == 500, "malformed config.xml is refused"
    assert (
        requests.post(
            jenkins.url + "job/nope/createItem?name=x", data=b"<a/>", auth=auth, headers=headers, timeout=5
        ).status_code
        == 404
    ), "no item inside a missing folder"
