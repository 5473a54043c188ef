"""Bad candidates stop at the gate or the perf test, through the real CLI, while production keeps serving.

A production iris is deployed and promoted by the push flow. A candidate (iris 1.1.0) is trained once;
each bad variant of it (an impossible threshold, a failing model test, an impossible SLA) then runs the
stage that must catch it, in a fresh `legion-ci <stage>` process as Jenkins runs it; a candidate trained
on 5% of the data runs the whole flow. Each must exit 1 at its stage, say why in JUnit XML and HTML, and
leave production's alias, deployment and server processes exactly as they were.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from legion_ci.core.artifact import Artifact
from legion_ci.core.processes import ours
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, load_settings
from legion_ci.pipeline.graph import stage
from legion_ci.pipeline.progress import QuietReporter
from legion_ci.pipeline.runner import run_flow, run_stage
from legion_ci.pipeline.stages.base import RunOptions
from legion_ci.quality.smoke import auth_headers
from tests.conftest import EXAMPLES
from tests.integration.test_report_browser import rendered_dom

FAST_PERF = {"users": 3, "spawn_rate": 3, "duration": 3, "sla": {"p95_ms": 500, "min_rps": 5, "max_error_rate": 0.0}}
CANDIDATE_RUN = "candidate-run"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGION_HOME": str(home)}
    for key in ("LEGION_REGISTRY_URL", "LEGION_IMAGE_REGISTRY", "LEGION_FORCE_REASON", "LEGION_SKIP_PERF_REASON"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=600
    )


def copy_iris(root: Path, name: str, change: Callable[[dict[str, Any]], None] = lambda spec: None) -> Path:
    """A copy of examples/iris with short perf settings and `change(spec)` applied."""
    folder = Path(shutil.copytree(EXAMPLES / "iris", root / name))
    write_spec(folder, change)
    return folder


def write_spec(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    spec = yaml.safe_load((EXAMPLES / "iris" / "legion.yaml").read_text())
    spec["perf"] = json.loads(json.dumps(FAST_PERF))
    change(spec)
    (folder / "legion.yaml").write_text(yaml.safe_dump(spec))


def as_candidate(spec: dict[str, Any]) -> None:
    spec["version"] = "1.1.0"


@dataclass
class World:
    home: Path
    settings: Settings
    candidate: Path
    before: dict[str, Any]

    def registry(self) -> Registry:
        return Registry(self.settings.registry_url)

    def snapshot(self) -> dict[str, Any]:
        """The production alias and every active deployment, with its processes."""
        registry = self.registry()
        alias = registry.alias("iris", "production")
        assert alias is not None
        deployments = [
            (d.id, d.version_id, d.status, d.weight, [e["pid"] for e in d.endpoints])
            for d in registry.deployments("iris")
        ]
        registry.close()
        return {"production": alias.id, "deployments": deployments}

    def answers(self) -> tuple[str, list[Any]]:
        """Production's own server asked with its example rows, as a caller would."""
        registry = self.registry()
        prod = registry.alias("iris", "production")
        assert prod is not None
        art = Artifact.open(prod.path)
        deployment = next(d for d in registry.deployments("iris") if d.version_id == prod.id)
        registry.close()
        answer = httpx.post(
            f"{deployment.endpoints[0]['url']}/api/model/iris/{art.version}/invoke",
            json={"instances": art.schema.example},
            headers=auth_headers(self.settings, art, True),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.headers["x-model-version"], answer.json()["predictions"]

    def assert_untouched(self) -> None:
        now = self.snapshot()
        assert now == {k: self.before[k] for k in ("production", "deployments")}
        assert all(ours(pid) for deployment in now["deployments"] for pid in deployment[4])
        assert self.answers() == self.before["answers"]

    def reports(self, stage_name: str, run_id: str = CANDIDATE_RUN) -> Path:
        return self.home / "runs" / run_id / stage_name

    @contextmanager
    def candidate_spec(self, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
        """The candidate's legion.yaml changed for one stage run, then put back."""

        def changed(spec: dict[str, Any]) -> None:
            as_candidate(spec)
            change(spec)

        write_spec(self.candidate, changed)
        try:
            yield
        finally:
            write_spec(self.candidate, as_candidate)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """iris 1.0.0 promoted to production by the push flow; iris 1.1.0 trained as the candidate."""
    root = tmp_path_factory.mktemp("gate-failures")
    settings = load_settings(str(root / "home"), f"sqlite:///{root / 'home' / 'registry.db'}")
    registry = Registry(settings.registry_url)
    try:
        summary = run_flow(
            settings,
            registry,
            copy_iris(root, "production"),
            "push",
            RunOptions(skip_perf_reason="iris meets its SLA in tests/integration/test_perf_stage.py"),
            QuietReporter(),
        )
        assert summary.status == "passed", summary.as_dict()
        candidate = copy_iris(root, "candidate", as_candidate)
        run = registry.ensure_run(CANDIDATE_RUN, "iris", str(candidate), "push")
        for name in ("validate", "train"):
            run_stage(settings, registry, run, stage(name), RunOptions(), QuietReporter())
        world = World(settings.home, settings, candidate, {})
        world.before = {**world.snapshot(), "answers": world.answers()}
        yield world
    finally:
        registry.close()
        cli(settings.home, "undeploy", "iris")


def failures(junit: Path) -> dict[str, str]:
    """name -> failure message of every failed testcase."""
    root = ET.parse(junit).getroot()
    return {
        c.get("name", ""): c.find("failure").get("message", "")  # type: ignore[union-attr]
        for c in root.iter("testcase")
        if c.find("failure") is not None
    }


def fails(world: World, stage_name: str) -> dict[str, str]:
    """`legion-ci STAGE` on the candidate: exit 1, the reason in JUnit and HTML, production untouched."""
    done = cli(world.home, stage_name, str(world.candidate), "--run-id", CANDIDATE_RUN)
    assert done.returncode == 1, (done.returncode, done.stderr)
    failed = failures(world.reports(stage_name) / "junit.xml")
    assert failed, "a failed stage must have a failed testcase"
    page = (world.reports(stage_name) / "report.html").read_text()
    assert 'data-status="failed"' in page
    for message in failed.values():
        assert html.escape(message) in page
        assert message.split(":")[0] in done.stderr  # the console says why too
    world.assert_untouched()
    return failed


def test_an_impossible_threshold_fails_the_gate_and_force_records_why(world: World) -> None:
    with world.candidate_spec(lambda spec: spec["gate"]["thresholds"].update(accuracy={"min": 0.999})):
        failed = fails(world, "gate")
        assert list(failed) == ["accuracy"]
        assert failed["accuracy"].startswith("accuracy 0.")
        assert "is below the minimum 0.999 by 0.0" in failed["accuracy"]

        # Forced past the gate: it passes, and says so everywhere, never silently.
        why = "accepted by ML lead, ticket ML-42"
        forced = cli(world.home, "gate", str(world.candidate), "--run-id", CANDIDATE_RUN, "--force", why, "--json")
    assert forced.returncode == 0, forced.stderr
    result = json.loads(forced.stdout)
    assert result["status"] == "passed" and result["summary"].startswith(f"FORCED: {why}")
    assert result["outputs"]["forced"] is True and result["outputs"]["force_reason"] == why
    gate = world.reports("gate")
    assert ">FORCED<" in (gate / "report.html").read_text() and why in (gate / "report.html").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(gate / "junit.xml").getroot().iter("property")}
    assert props["forced_reason"] == why and "accuracy" in failures(gate / "junit.xml")
    summary = json.loads((gate / "summary.json").read_text())
    assert summary["status"] == "forced" and summary["forced_reason"] == why and summary["passed"] is False
    world.assert_untouched()


def test_a_failing_model_test_fails_the_gate(world: World) -> None:
    wrong = world.candidate / "tests" / "test_wrong.py"
    wrong.write_text(
        "def test_setosa_is_virginica(model):\n"
        "    assert model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 2, 'expected virginica'\n"
    )
    try:
        failed = fails(world, "gate")
    finally:
        wrong.unlink()
    assert list(failed) == ["tests/test_wrong.py::test_setosa_is_virginica"]
    assert "expected virginica" in failed["tests/test_wrong.py::test_setosa_is_virginica"]


def test_an_impossible_sla_fails_perf(world: World) -> None:
    # perf needs the candidate's gate to have passed in its run (another test may have left it failed)
    gate = cli(world.home, "gate", str(world.candidate), "--run-id", CANDIDATE_RUN)
    assert gate.returncode == 0, gate.stderr
    with world.candidate_spec(lambda spec: spec["perf"]["sla"].update(p95_ms=0.01)):
        failed = fails(world, "perf")
    assert list(failed) == ["p95 latency"]
    assert "is above the maximum 0.01 ms by" in failed["p95 latency"]
    perf = world.reports("perf")
    assert (perf / "locust.html").is_file() and (perf / "locust_stats.csv").is_file()
    assert not ours(json.loads((perf / "summary.json").read_text())["load"]["server_pid"])


def test_a_retrain_no_better_than_production_deploys_nothing(world: World) -> None:
    """Same model as production: a retrain must improve, so the flow ends at the gate without failing."""
    run_id = "candidate-retrain"
    registry = world.registry()
    run = registry.ensure_run(run_id, "iris", str(world.candidate), "retrain")
    run_stage(world.settings, registry, run, stage("train"), RunOptions(), QuietReporter())  # reuses the artifact
    done = cli(world.home, "gate", "--run-id", run_id, "--json")
    assert done.returncode == 0, done.stderr
    summary_line = json.loads(done.stdout)["summary"]
    assert "the candidate is no better" in summary_line and "nothing to deploy" in summary_line
    deploy = run_stage(world.settings, registry, run, stage("deploy"), RunOptions(), QuietReporter())
    registry.close()
    assert deploy.status == "skipped" and deploy.summary.startswith("not needed:")
    summary = json.loads((world.reports("gate", run_id) / "summary.json").read_text())
    assert summary["status"] == "halted"
    assert ">HALTED<" in (world.reports("gate", run_id) / "report.html").read_text()
    world.assert_untouched()


def test_a_candidate_trained_on_5_percent_of_the_data_loses_to_production(world: World, tmp_path: Path) -> None:
    def starved(spec: dict[str, Any]) -> None:
        spec["train"]["test_size"] = 0.95  # 7 training rows
        spec["gate"]["thresholds"] = {}  # only the comparison decides

    done = cli(world.home, "run", str(copy_iris(tmp_path, "starved", starved)), "--json")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert statuses["gate"] == "failed" and statuses["deploy"] == statuses["promote"] == "pending", statuses
    gate = world.reports("gate", summary["run_id"])
    failed = failures(gate / "junit.xml")
    assert list(failed) == ["no regression vs production (accuracy)"]
    message = failed["no regression vs production (accuracy)"]
    assert "regresses by" in message and "more than the allowed 0.02" in message and "vs production 1.0.0" in message
    dom = rendered_dom(gate / "report.html", tmp_path)
    assert html.escape(message, quote=False) in dom and 'data-status="failed"' in dom
    for key in ("metrics", "confusion", "roc"):
        assert f'data-plot="{key}"' in dom and f'id="{key}-data' in dom, key
    assert 'id="metrics-data-accuracy-production"' in dom  # production's bar beside the candidate's
    world.assert_untouched()
