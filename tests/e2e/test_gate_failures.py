"""Bad candidates stop at the gate or the perf test, through the real CLI, while production keeps serving.

One production iris is deployed and promoted by the whole push flow; then each bad candidate (an
impossible threshold, 5% of the training data, a failing model test, an impossible SLA) runs the same
flow. Each must fail with exit 1 at its stage, say why in JUnit XML and HTML, and leave production's
alias, deployment and server processes exactly as they were.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from legion_ci.artifact import Artifact
from legion_ci.config import load_settings
from legion_ci.deploy.process import ours
from legion_ci.registry import Registry
from legion_ci.smoke import auth_headers
from tests.conftest import EXAMPLES
from tests.integration.test_report_browser import rendered_dom

FAST_PERF = {"users": 3, "spawn_rate": 3, "duration": 3, "sla": {"p95_ms": 500, "min_rps": 5, "max_error_rate": 0.0}}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGION_HOME": str(home)}
    for key in ("LEGION_REGISTRY_URL", "LEGION_IMAGE_REGISTRY", "LEGION_FORCE_REASON", "LEGION_SKIP_PERF_REASON"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def copy_iris(root: Path, name: str, change: Any) -> Path:
    """A copy of examples/iris with short perf settings and `change(spec, folder)` applied."""
    folder = Path(shutil.copytree(EXAMPLES / "iris", root / name))
    spec = yaml.safe_load((folder / "legion.yaml").read_text())
    spec["perf"] = json.loads(json.dumps(FAST_PERF))
    change(spec, folder)
    (folder / "legion.yaml").write_text(yaml.safe_dump(spec))
    return folder


@dataclass
class Production:
    home: Path
    root: Path

    def registry(self) -> Registry:
        return Registry(load_settings(str(self.home)).registry_url)

    def snapshot(self) -> dict[str, Any]:
        """The production alias and every active deployment, with its processes."""
        registry = self.registry()
        alias = registry.alias("iris", "production")
        assert alias is not None
        deployments = [(d.id, d.version_id, d.status, d.weight, [e["pid"] for e in d.endpoints])
                       for d in registry.deployments("iris")]
        registry.close()
        return {"production": alias.id, "deployments": deployments}

    def answers(self) -> tuple[str, list[Any]]:
        """Production's own server asked with its example rows, as a caller would."""
        settings = load_settings(str(self.home))
        registry = self.registry()
        prod = registry.alias("iris", "production")
        assert prod is not None
        art = Artifact.open(prod.path)
        deployment = next(d for d in registry.deployments("iris") if d.version_id == prod.id)
        answer = httpx.post(f"{deployment.endpoints[0]['url']}/api/model/iris/{art.version}/invoke",
                            json={"instances": art.schema["example"]}, headers=auth_headers(settings, art, True),
                            timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-model-version"], answer.json()["predictions"]


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Production, dict[str, Any]]]:
    """iris through the whole push flow: gate and perf pass, deployed, promoted to production."""
    root = tmp_path_factory.mktemp("gate-failures")
    prod = Production(root / "home", root)
    folder = copy_iris(root, "iris", lambda spec, _: None)
    done = cli(prod.home, "run", str(folder), "--json")
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    try:
        assert done.returncode == 0, (done.stderr, summary)
        by_stage = {s["stage"]: s for s in summary["stages"]}
        assert by_stage["gate"]["status"] == "passed" and by_stage["perf"]["status"] == "passed", by_stage
        before = prod.snapshot()
        before["answers"] = prod.answers()
        yield prod, before
    finally:
        cli(prod.home, "undeploy", "iris")


def fail_flow(prod: Production, before: dict[str, Any], folder: Path, stage: str) -> tuple[dict[str, Any], Path]:
    """Run the push flow on a bad candidate: exit 1 at `stage`, nothing after it, production untouched."""
    done = cli(prod.home, "run", str(folder), "--json")
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    summary = json.loads(done.stdout)
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert statuses[stage] == "failed", statuses
    assert statuses["deploy"] == statuses["promote"] == "pending", statuses
    assert_untouched(prod, before)
    return summary, prod.home / "runs" / summary["run_id"] / stage


def assert_untouched(prod: Production, before: dict[str, Any]) -> None:
    now = prod.snapshot()
    assert now == {k: before[k] for k in ("production", "deployments")}
    assert all(ours(pid) for deployment in now["deployments"] for pid in deployment[4])
    assert prod.answers() == before["answers"]


def failures(junit: Path) -> dict[str, str]:
    """name -> failure message of every failed testcase."""
    root = ET.parse(junit).getroot()
    return {c.get("name", ""): c.find("failure").get("message", "")  # type: ignore[union-attr]
            for c in root.iter("testcase") if c.find("failure") is not None}


def test_an_impossible_threshold_fails_the_gate_and_force_records_why(production, tmp_path: Path) -> None:
    prod, before = production

    def impossible(spec: dict[str, Any], _: Path) -> None:
        spec["gate"]["thresholds"]["accuracy"] = {"min": 0.999}

    summary, gate = fail_flow(prod, before, copy_iris(tmp_path, "iris", impossible), "gate")
    failed = failures(gate / "junit.xml")
    assert list(failed) == ["accuracy"]
    assert failed["accuracy"].startswith("accuracy 0.") and "is below the minimum 0.999 by 0.0" in failed["accuracy"]
    page = (gate / "report.html").read_text()
    assert html.escape(failed["accuracy"]) in page and 'data-status="failed"' in page
    assert json.loads((gate / "summary.json").read_text())["status"] == "failed"

    # Forced past the gate: it passes, and says so everywhere, never silently.
    forced = cli(prod.home, "gate", "--run-id", summary["run_id"], "--force", "accepted by ML lead, ticket ML-42",
                 "--json")
    assert forced.returncode == 0, forced.stderr
    result = json.loads(forced.stdout)
    assert result["status"] == "passed" and result["summary"].startswith("FORCED: accepted by ML lead, ticket ML-42")
    assert result["outputs"]["forced"] is True
    assert result["outputs"]["force_reason"] == "accepted by ML lead, ticket ML-42"
    assert "FORCED" in (gate / "report.html").read_text() and "ticket ML-42" in (gate / "report.html").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(gate / "junit.xml").getroot().iter("property")}
    assert props["forced_reason"] == "accepted by ML lead, ticket ML-42" and "accuracy" in failures(gate / "junit.xml")
    assert json.loads((gate / "summary.json").read_text())["forced_reason"] == "accepted by ML lead, ticket ML-42"
    assert_untouched(prod, before)


def test_a_candidate_trained_on_5_percent_of_the_data_loses_to_production(production, tmp_path: Path) -> None:
    prod, before = production

    def starved(spec: dict[str, Any], _: Path) -> None:
        spec["train"]["test_size"] = 0.95  # 7 training rows
        spec["gate"]["thresholds"] = {}  # only the comparison decides

    _, gate = fail_flow(prod, before, copy_iris(tmp_path, "iris", starved), "gate")
    failed = failures(gate / "junit.xml")
    assert list(failed) == ["no regression vs production (accuracy)"]
    message = failed["no regression vs production (accuracy)"]
    assert "regresses by" in message and "more than the allowed 0.02" in message and "vs production 1.0.0" in message
    dom = rendered_dom(gate / "report.html", tmp_path)
    assert html.escape(message, quote=False) in dom
    assert 'data-status="failed"' in dom
    for key in ("metrics", "confusion", "roc"):
        assert f'data-plot="{key}"' in dom and f'id="{key}-data' in dom, key
    assert 'id="metrics-data-accuracy-production"' in dom  # production's bar beside the candidate's


def test_a_failing_model_test_fails_the_gate(production, tmp_path: Path) -> None:
    prod, before = production

    def wrong_test(_: dict[str, Any], folder: Path) -> None:
        (folder / "tests" / "test_wrong.py").write_text(
            "def test_setosa_is_virginica(model):\n"
            "    assert model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 2, 'expected virginica'\n")

    _, gate = fail_flow(prod, before, copy_iris(tmp_path, "iris", wrong_test), "gate")
    failed = failures(gate / "junit.xml")
    assert list(failed) == ["tests/test_wrong.py::test_setosa_is_virginica"]
    assert "expected virginica" in failed["tests/test_wrong.py::test_setosa_is_virginica"]
    assert html.escape("expected virginica") in (gate / "report.html").read_text()


def test_an_impossible_sla_fails_perf(production, tmp_path: Path) -> None:
    prod, before = production

    def impossible(spec: dict[str, Any], _: Path) -> None:
        spec["perf"]["sla"]["p95_ms"] = 0.01

    summary, perf = fail_flow(prod, before, copy_iris(tmp_path, "iris", impossible), "perf")
    assert {s["stage"]: s["status"] for s in summary["stages"]}["gate"] == "passed"
    failed = failures(perf / "junit.xml")
    assert list(failed) == ["p95 latency"]
    assert "is above the maximum 0.01 ms by" in failed["p95 latency"]
    assert html.escape(failed["p95 latency"]) in (perf / "report.html").read_text()
    assert (perf / "locust.html").is_file() and (perf / "locust_stats.csv").is_file()
    assert not ours(json.loads((perf / "summary.json").read_text())["load"]["server_pid"])
