"""A retrain's gate through the real CLI, stage by stage as Jenkins runs it: a candidate no better than
production halts the flow, one word everywhere (issue 12, item 9), and a tie rule in the spec decides a tie
instead (item 5).

Production is iris as the example trains it; the candidate changes only max_iter (the solver converged long
before), so it is a different artifact with the very same held-out metrics: a tie on every metric."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    env["LEGION_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=600
    )


def runs(home: Path) -> dict[str, dict[str, Any]]:
    done = cli(home, "runs", "--json", "--limit", "50")
    assert done.returncode == 0, done.stderr
    return {r["run_id"]: r for r in json.loads(done.stdout)}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home whose production iris is the example as it trains."""
    home = tmp_path_factory.mktemp("home")
    model = Path(shutil.copytree(EXAMPLES / "iris", tmp_path_factory.mktemp("prod") / "iris"))
    done = cli(home, "train", str(model), "--run-id", "prod")
    assert done.returncode == 0, done.stderr
    registry = Registry.from_settings(load_settings(str(home)))
    try:
        (version,) = registry.versions("iris")
        registry.set_alias("iris", "production", version.id)
    finally:
        registry.close()
    yield home


def candidate(tmp_path: Path, **compare: Any) -> Path:
    """A copy of iris whose training differs from production's only where it cannot matter."""
    model = Path(shutil.copytree(EXAMPLES / "iris", tmp_path / "iris"))
    spec = yaml.safe_load((model / "legion.yaml").read_text())
    spec["train"]["params"]["max_iter"] = 600
    spec["gate"]["compare_to_production"].update(compare)
    (model / "legion.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return model


def retrain_gate(home: Path, model: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    for step in ("validate", "train"):
        done = cli(home, step, str(model), "--run-id", run_id, "--flow", "retrain")
        assert done.returncode == 0, done.stderr
    return cli(home, "gate", str(model), "--run-id", run_id)


def test_a_retrain_no_better_than_production_is_halted_everywhere(home: Path, tmp_path: Path) -> None:
    model = candidate(tmp_path)
    done = retrain_gate(home, model, "tie")
    assert done.returncode == 0, done.stderr
    assert "[gate] HALTED in" in done.stderr, done.stderr
    assert "HALTED  no regression vs production (accuracy)" in done.stderr
    assert "a tie: name a tie rule in gate.compare_to_production: `min_delta: 0` accepts a tie" in done.stderr
    assert "FAILED" not in done.stderr and "PASSED in" not in done.stderr.split("[gate] Quality gate")[1]
    run = runs(home)["tie"]
    assert run["status"] == "halted" and run["stages"]["gate"] == "halted"

    later = cli(home, "perf", str(model), "--run-id", "tie")
    assert later.returncode == 0 and "[perf] SKIPPED" in later.stderr, later.stderr
    assert runs(home)["tie"]["stages"]["perf"] == "skipped" and runs(home)["tie"]["status"] == "halted"

    folder = load_settings(str(home)).runs_dir / "tie" / "gate"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "halted" and summary["counts"]["halted"] == 1
    assert [c["verdict"] for c in summary["checks"] if c["kind"] == "comparison"] == ["halted"]
    assert '<skipped message="halted: ' in (folder / "junit.xml").read_text()
    html = (folder / "report.html").read_text()
    assert 'data-status="halted"' in html and 'class="badge b-halted">HALTED<' in html


def test_a_tie_rule_in_the_spec_lets_a_tied_retrain_through(home: Path, tmp_path: Path) -> None:
    model = candidate(tmp_path, min_delta=0)
    done = retrain_gate(home, model, "tie-accepted")
    assert done.returncode == 0, done.stderr
    assert "[gate] PASSED in" in done.stderr, done.stderr
    assert "a tie, accepted by gate.compare_to_production.min_delta 0" in done.stderr
    run = runs(home)["tie-accepted"]
    assert run["stages"]["gate"] == "passed" and run["status"] == "running"  # perf and the rest may go on


def test_validate_refuses_a_tie_breaker_that_is_no_metric(home: Path, tmp_path: Path) -> None:
    model = candidate(tmp_path, tie_breaker="logloss")
    done = cli(home, "validate", str(model))
    assert done.returncode == 2
    assert "gate.compare_to_production.tie_breaker" in done.stderr and "did you mean 'log_loss'" in done.stderr
