"""examples/iris through its gate, then the perf stage: the candidate's real server under a real headless
Locust, then stopped."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion_ci.core.errors import StageError
from legion_ci.core.processes import ours
from legion_ci.core.registry import Registry, RunRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.pipeline.graph import stage
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import run_stage
from legion_ci.pipeline.stages.base import RunOptions, StageResult
from legion_ci.quality.perf.results import mean_rps, read_samples, read_stats
from tests.conftest import EXAMPLES

FAST = {"users": 3, "spawn_rate": 3, "duration": 3}
OWN_LOCUSTFILE = """
import os
from locust import FastHttpUser, task

class Custom(FastHttpUser):
    @task
    def custom(self):
        headers = {"Authorization": "Bearer " + os.environ["LEGION_PERF_TOKEN"]}
        rows = __import__("json").loads(os.environ["LEGION_PERF_EXAMPLES"])
        self.client.post(os.environ["LEGION_PERF_INVOKE_PATH"], json={"instances": rows[:2]}, headers=headers,
                         name="custom-invoke")
"""


@dataclass
class Trained:
    settings: Settings
    registry: Registry
    run: RunRecord
    model_dir: Path
    raw: dict[str, Any]
    gate: StageResult

    def perf(self, options: RunOptions | None = None, **perf: Any) -> StageResult:
        """Run the perf stage again on the same run, with legion.yaml's perf section replaced."""
        spec = {**self.raw, "perf": {**FAST, **perf}}
        (self.model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
        return run_stage(
            self.settings, self.registry, self.run, stage("perf"), options or RunOptions(), PlainReporter()
        )

    def reports(self) -> Path:
        return self.settings.runs_dir / self.run.id / "perf"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """examples/iris trained and gated once by the real stages; perf runs again and again on that run."""
    root = tmp_path_factory.mktemp("perf")
    model_dir = Path(shutil.copytree(EXAMPLES / "iris", root / "iris"))
    settings = load_settings(str(root / "home"), f"sqlite:///{root / 'home' / 'registry.db'}")
    registry = Registry(settings.registry_url)
    run = registry.ensure_run("perf-test-run", "iris", str(model_dir), "push")
    for name in ("validate", "train"):
        run_stage(settings, registry, run, stage(name), RunOptions(), PlainReporter())
    gate = run_stage(settings, registry, run, stage("gate"), RunOptions(), PlainReporter())
    yield Trained(settings, registry, run, model_dir, yaml.safe_load((model_dir / "legion.yaml").read_text()), gate)
    registry.close()


def test_iris_passes_its_gate(trained: Trained) -> None:
    assert trained.gate.status == "passed" and trained.gate.summary.startswith("all 7 checks passed")
    folder = trained.settings.runs_dir / trained.run.id / "gate"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["counts"]["failed"] == 0
    names = {c["name"] for c in summary["checks"]}
    assert {"accuracy", "f1", "log_loss", "tests/test_model.py::test_predicts_a_known_species"} <= names
    assert {c.get("name") for c in ET.parse(folder / "junit.xml").getroot().iter("testcase")} == names
    assert 'data-status="passed"' in (folder / "report.html").read_text()


def test_iris_meets_its_sla_and_the_server_is_gone_afterwards(trained: Trained) -> None:
    result = trained.perf()
    assert result.status == "passed", result.summary
    assert "p95" in result.summary and result.outputs["requests"] > 0
    folder = trained.reports()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["load"]["locustfile_source"] == "generated"
    assert summary["totals"]["requests"] > 0 and summary["totals"]["failures"] == 0
    assert not ours(summary["load"]["server_pid"]), "the candidate's server must be stopped after the test"
    cases = {c.get("name"): c for c in ET.parse(folder / "junit.xml").getroot().iter("testcase")}
    assert {"p95 latency", "p99 latency", "throughput", "error rate"} <= set(cases)
    assert all(c.find("failure") is None for c in cases.values())
    assert "locust" in (folder / "locust.html").read_text().lower()  # Locust's own report, beside ours
    page = (folder / "report.html").read_text()
    assert 'data-status="passed"' in page and 'href="locust.html"' in page and 'id="latency-data-p95' in page
    assert "LEGION_PERF_TOKEN" not in page and "Bearer" not in (folder / "locust.log").read_text()


def test_the_headline_the_plot_and_locusts_final_count_are_the_same_numbers(trained: Trained) -> None:
    result = trained.perf(duration=4)
    assert result.status == "passed", result.summary
    folder = trained.reports()
    samples = read_samples(folder / "locust_samples.csv")
    assert samples and all(p.width <= 0.5 for p in samples)  # sampled at least every half second
    assert sum(p.width for p in samples) >= 3.0  # the 4 s asked for were run, not cut short by a stale clock
    total, _ = read_stats(folder / "locust_stats.csv")
    assert total.requests == samples[-1].total_requests  # the final count, not the last once-a-second write
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["totals"]["rps"] == mean_rps(samples) and summary["totals"]["requests"] == total.requests
    page = (folder / "report.html").read_text()
    assert f"mean {mean_rps(samples):,.0f}/s" in page and f"{mean_rps(samples):,.1f}/s</div>" in page


def test_the_models_own_locustfile_is_used_when_present(trained: Trained) -> None:
    own = trained.model_dir / "perf" / "locustfile.py"
    own.parent.mkdir(exist_ok=True)
    own.write_text(OWN_LOCUSTFILE)
    try:
        result = trained.perf(sla={"p95_ms": 1000})
    finally:
        shutil.rmtree(own.parent)
    assert result.status == "passed", result.summary
    summary = json.loads((trained.reports() / "summary.json").read_text())
    assert summary["load"]["locustfile_source"] == "model"
    assert [r["name"] for r in summary["requests"]] == ["custom-invoke"]


@pytest.mark.parametrize(
    "source, message, server",
    [
        (
            "from locust import FastHttpUser\nclass Broken(FastHttpUser)\n    pass\n",
            r"perf/locustfile.py: not valid Python: expected ':' \(line 2\)",
            False,
        ),
        (
            "import no_such_module_here\n",
            r"(?s)Locust could not run .*perf/locustfile.py \(exit 1.*no_such_module_here",
            True,
        ),
    ],
)
def test_a_broken_model_locustfile_is_an_error_naming_the_file(
    trained: Trained, source: str, message: str, server: bool
) -> None:
    own = trained.model_dir / "perf" / "locustfile.py"
    own.parent.mkdir(exist_ok=True)
    own.write_text(source)
    try:
        with pytest.raises(StageError, match=message) as caught:
            trained.perf()
    finally:
        shutil.rmtree(own.parent)
    assert caught.value.exit_code == 2
    summary = json.loads((trained.reports() / "summary.json").read_text())
    assert summary["status"] == "error"
    pid = summary["load"]["server_pid"]
    assert (pid is not None) == server and not (pid and ours(pid)), "a server started for the test must be stopped"
    assert ET.parse(trained.reports() / "junit.xml").getroot().get("errors") == "1"


@pytest.mark.parametrize(
    "options, perf, why",
    [
        (RunOptions(skip_perf_reason="load lab is down, ticket OPS-3"), {}, "skipped by request: load lab is down"),
        (RunOptions(), {"enabled": False}, "perf.enabled is false"),
    ],
)
def test_skipping_records_the_reason(trained: Trained, options: RunOptions, perf: dict, why: str) -> None:
    result = trained.perf(options, **perf)
    assert result.status == "skipped" and why in result.summary
    record = trained.registry.stages(trained.run.id)["perf"]
    assert record.status == "skipped" and why in record.summary
    folder = trained.reports()
    assert why in (folder / "report.html").read_text() and why in (folder / "locust.html").read_text()
    assert json.loads((folder / "summary.json").read_text())["status"] == "skipped"
