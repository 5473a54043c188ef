"""The whole pipeline on one machine, through the real CLI in fresh processes, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from legion_ci.core.artifact import Artifact
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.quality.smoke import auth_headers


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGION_HOME": str(home)}
    env.pop("LEGION_REGISTRY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    registry = Registry(load_settings(str(home)).registry_url)
    for model in registry.model_names():
        cli(home, "undeploy", model)


def short_perf(model_dir: Path) -> None:
    """Keep the real performance test, but short: these tests are about the pipeline, not the SLA."""
    spec = yaml.safe_load((model_dir / "legion.yaml").read_text())
    spec["perf"] = {**spec.get("perf", {}), "users": 4, "spawn_rate": 4, "duration": 2}
    (model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))


def run_json(home: Path, model_dir: Path, *extra: str) -> tuple[int, dict]:
    short_perf(model_dir)
    done = cli(home, "run", str(model_dir), "--json", *extra)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def production_answers(home: Path, model: str) -> tuple[str, list]:
    """Ask every active deployment of the production version, as a caller would; return version and answers."""
    settings = load_settings(str(home))
    registry = Registry(settings.registry_url)
    prod = registry.alias(model, "production")
    assert prod is not None
    art = Artifact.open(prod.path)
    deployment = next(d for d in registry.deployments(model) if d.version_id == prod.id)
    url = deployment.endpoints[0]["url"]
    answer = httpx.post(
        f"{url}/api/model/{model}/{art.version}/invoke",
        json={"instances": art.schema.example},
        headers=auth_headers(settings, art, True),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-model-version"], answer.json()["predictions"]


def test_iris_end_to_end_then_rerun_promotes_nothing(home: Path, iris_dir: Path) -> None:
    code, summary = run_json(home, iris_dir)
    assert code == 0, summary
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert statuses.pop("package") == "skipped"  # local target, no image registry configured
    assert set(statuses.values()) == {"passed"}
    version, predictions = production_answers(home, "iris")
    production = Registry(load_settings(str(home)).registry_url).alias("iris", "production")
    assert production is not None
    art = Artifact.open(production.path)
    assert version == "1.0.0" and predictions == art.schema.example_predictions

    code, again = run_json(home, iris_dir)
    assert code == 0, again
    by_stage = {s["stage"]: s["summary"] for s in again["stages"]}
    assert "reused artifact" in by_stage["train"]
    assert "nothing to promote" in by_stage["promote"]
    registry = Registry(load_settings(str(home)).registry_url)
    assert len(registry.versions("iris")) == 1
    assert len(registry.deployments("iris")) == 1

    # Jenkins' "Restart from Stage": a stage re-run alone, in a fresh process, on the same run id
    rerun = cli(home, "gate", str(iris_dir), "--run-id", again["run_id"], "--json")
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["status"] == "passed", rerun.stderr
    redeploy = cli(home, "deploy", str(iris_dir), "--run-id", again["run_id"], "--json")
    assert redeploy.returncode == 0, redeploy.stderr
    assert len(registry.deployments("iris")) == 1


def test_impossible_threshold_fails_the_gate_and_production_keeps_serving(home: Path, iris_dir: Path) -> None:
    assert run_json(home, iris_dir)[0] == 0
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["version"] = "1.1.0"
    spec["gate"]["thresholds"]["accuracy"] = {"min": 0.999}
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
    code, summary = run_json(home, iris_dir)
    assert code == 1
    gate = next(s for s in summary["stages"] if s["stage"] == "gate")
    assert gate["status"] == "failed" and "below the minimum 0.999 by" in gate["summary"]
    assert all(
        s["status"] == "pending" for s in summary["stages"][[s["stage"] for s in summary["stages"]].index("gate") + 1 :]
    )
    version, _ = production_answers(home, "iris")
    assert version == "1.0.0"


def test_diabetes_end_to_end(home: Path, diabetes_dir: Path) -> None:
    code, summary = run_json(home, diabetes_dir)
    assert code == 0, summary
    settings = load_settings(str(home))
    prod = Registry(settings.registry_url).alias("diabetes", "production")
    assert prod is not None and prod.manifest.task == "regression"


def test_stage_without_a_run_says_what_to_do(home: Path, iris_dir: Path) -> None:
    done = cli(home, "gate", str(iris_dir))
    assert done.returncode == 2 and "has no run yet" in done.stderr


def test_stage_before_its_needs_says_which_stage_to_run(home: Path, iris_dir: Path) -> None:
    done = cli(home, "gate", str(iris_dir), "--run-id", "fresh-run")
    assert done.returncode == 2
    assert "needs stage 'train'" in done.stderr and "legion-ci train" in done.stderr
