"""Rollouts decided by evidence, end to end on the local target: real model servers behind the real router,
labelled traffic through the stable URL, and `legion-ci evaluate` deciding (issue 13).

Production is a weak iris v1 (strong regularisation). v2 is truly worse (trained on shuffled labels): at its
canary step, the evidence rolls it back. v3 is truly better, but fails (500) on a negative measurement:
called so, the error-rate guard rolls it back at the next evaluation whatever its metric; a p99 bound it
cannot meet does too; deployed again as a shadow (copies of production's requests) and called as it
should be, it takes the first canary step, is advanced a step by evidence and then promoted. Each decision
is a registry event and an A/B report."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris

from legion_ci.cli import main
from legion_ci.core.registry import Registry, VersionRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import StageStatus
from legion_ci.core.store import open_artifact
from legion_ci.deploy import local_router, rollout
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions
from legion_ci.quality.smoke import auth_headers

pytestmark = pytest.mark.slow

SHUFFLING_TRAIN = '''"""iris, with the option to learn from shuffled labels (a candidate that is truly worse), and to
take the log of its features first (a model that fails, 500, on a negative measurement)."""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from legion_ci import toolchain

ctx = toolchain.init()
y = np.asarray(ctx.y_train)
if ctx.params.get("shuffle_labels"):
    y = np.random.default_rng(7).permutation(y)
steps = [FunctionTransformer(np.log)] if ctx.params.get("log_features") else []
steps += [StandardScaler(), LogisticRegression(C=ctx.params["C"], max_iter=500, random_state=ctx.seed)]
model = make_pipeline(*steps)
model.fit(ctx.x_train, y)
toolchain.export(model)
'''


def log(line: str) -> None:
    print(line)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iris_dir: Path) -> Iterator[tuple[Settings, Registry]]:
    home = tmp_path / "home"
    monkeypatch.setenv("LEGION_HOME", str(home))
    monkeypatch.delenv("LEGION_REGISTRY_URL", raising=False)
    monkeypatch.setenv(local_router.ENV_PORT, "0")
    (iris_dir / "train.py").write_text(SHUFFLING_TRAIN)
    settings = load_settings()
    registry = Registry.from_settings(settings)
    yield settings, registry
    rollout.undeploy(settings, registry, "iris", None, home / "teardown", lambda _line: None)
    local_router.stop(settings)
    registry.close()


def spec_as(
    model_dir: Path,
    version: str,
    params: dict[str, Any],
    guard: dict[str, Any] | None = None,
    strategy: str = "canary",
) -> None:
    spec = yaml.safe_load((model_dir / "legion.yaml").read_text())
    spec["version"] = version
    spec["train"]["params"] = params
    spec["deploy"].update(replicas=1, auth=True)
    spec["rollout"] = {
        "strategy": strategy,
        "steps": [20, 50, 100],
        "metric": "accuracy",
        "margin": 0.1,
        "min_labelled": 30,
        "guard": {"max_error_rate": 0.01, "min_requests": 20, **(guard or {})},
    }
    (model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))


def trained(settings: Settings, registry: Registry, model_dir: Path, run_id: str) -> VersionRecord:
    _, result = single_stage(
        settings, registry, "train", str(model_dir), run_id, "push", RunOptions(), PlainReporter(verbose_logs=True)
    )
    assert result.status is StageStatus.PASSED, result.summary
    return registry.version_by_id(int(result.outputs["version_id"]))


def deployed(settings: Settings, registry: Registry, model_dir: Path, version: VersionRecord, weight: int) -> None:
    from legion_ci.core.spec import load_spec

    spec = load_spec(model_dir).spec
    rollout.deploy(settings, registry, version, spec, weight, "local", settings.home / "deploys", log)


def traffic(settings: Settings, version: VersionRecord, requests: int, seed: int) -> dict[str, int]:
    """`requests` one-row invokes through the router's stable URL, then their ground truth, posted back as an
    application would; returns how many each version answered."""
    router = local_router.running(settings)
    assert router is not None
    url = rollout.stable_url(router.url, "iris") or ""
    headers = auth_headers(settings, open_artifact(settings, version.path), True)
    x, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(seed)
    answered: dict[str, int] = {}
    labels = []
    with httpx.Client(timeout=30, headers=headers) as client:
        for i in rng.integers(0, len(y), requests):
            rid = f"t{seed}-{uuid.uuid4().hex[:12]}"
            answer = client.post(url, json={"instances": [x[i].tolist()]}, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            answered[answer.headers["x-model-version"]] = answered.get(answer.headers["x-model-version"], 0) + 1
            labels.append({"request_id": rid, "ground_truth": int(y[i])})
        posted = client.post(url.replace("/invoke", "/feedback"), json=labels)
        assert posted.status_code == 200, posted.text
    return answered


def unlabelled_negative_rows(settings: Settings, version: VersionRecord, requests: int) -> dict[int, int]:
    """Requests with a negative measurement through the stable URL; their status codes, counted."""
    router = local_router.running(settings)
    assert router is not None
    url = rollout.stable_url(router.url, "iris") or ""
    headers = auth_headers(settings, open_artifact(settings, version.path), True)
    codes: dict[int, int] = {}
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(requests):
            code = client.post(url, json={"instances": [[-1.0, 3.5, 1.4, 0.2]]}).status_code
            codes[code] = codes.get(code, 0) + 1
    return codes


def evaluate(settings: Settings, registry: Registry, model_dir: Path) -> dict[str, Any]:
    _, result = single_stage(
        settings, registry, "evaluate", str(model_dir), None, "rollout", RunOptions(), PlainReporter(verbose_logs=True)
    )
    assert result.status is StageStatus.PASSED, result.summary
    print(f"evaluate: {result.summary}")
    return {"summary": result.summary, **result.outputs}


def weights(registry: Registry) -> dict[str, int]:
    return {str(d.detail["version"]): d.weight for d in registry.deployments("iris")}


@pytest.mark.timeout(1200)
def test_worse_rolled_back_by_evidence_guard_breach_rolled_back_better_advanced_and_promoted(
    world: tuple[Settings, Registry], iris_dir: Path, tmp_path: Path
) -> None:
    settings, registry = world
    spec_as(iris_dir, "1.0.0", {"C": 0.005})
    v1 = trained(settings, registry, iris_dir, "r1")
    deployed(settings, registry, iris_dir, v1, 100)
    rollout.promote(settings, registry, v1, settings.home / "promote", log)

    # v2, trained on shuffled labels, at the first canary step: rolled back by evidence.
    spec_as(iris_dir, "2.0.0", {"C": 1.0, "shuffle_labels": True})
    v2 = trained(settings, registry, iris_dir, "r2")
    deployed(settings, registry, iris_dir, v2, 20)
    assert weights(registry) == {"1.0.0": 80, "2.0.0": 20}
    answered = traffic(settings, v1, 300, seed=1)
    assert answered.get("2.0.0", 0) >= 30 and answered.get("1.0.0", 0) >= 30, answered
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "rollback" and "worse than production" in out["summary"], out["summary"]
    assert weights(registry) == {"1.0.0": 100}
    statuses = {d.detail["version"]: d.status for d in registry.deployments("iris", active_only=False)}
    assert statuses["2.0.0"] == "rolled-back"
    (event,) = registry.events("iris", version_id=v2.id)
    assert event.action == "rollback" and event.detail["decision"]["interval"]["high"] < -0.1
    junit = ET.parse(settings.runs_dir / event.run_id / "evaluate" / "junit.xml").getroot()  # type: ignore[operator]
    assert int(junit.get("failures") or 0) >= 1, "a rollback is a failed test case"

    # v3 is better, but it fails (500) on rows with a negative measurement: the error-rate guard rolls it back
    # at the next evaluation, whatever its metric.
    spec_as(iris_dir, "3.0.0", {"C": 1.0, "log_features": True})
    v3 = trained(settings, registry, iris_dir, "r3")
    deployed(settings, registry, iris_dir, v3, 20)
    traffic(settings, v1, 150, seed=2)
    codes = unlabelled_negative_rows(settings, v1, 50)
    assert codes.get(200, 0) >= 30 and len(codes) > 1, codes  # production answers them; v3 fails
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "rollback" and "guard breached: error rate" in out["summary"], out["summary"]
    assert weights(registry) == {"1.0.0": 100}

    # A p99 bound the server cannot meet (a microsecond) is a guard too.
    spec_as(iris_dir, "3.0.0", {"C": 1.0, "log_features": True}, guard={"max_p99_ms": 0.001})
    deployed(settings, registry, iris_dir, v3, 20)
    traffic(settings, v1, 150, seed=5)
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "rollback" and "guard breached: p99 latency" in out["summary"], out["summary"]

    # v3 again, called as it should be, as a shadow first: it answers copies of production's requests (the
    # router's mirror), the evidence shows it no worse on the same rows, and it takes the first canary step;
    # then it is advanced a step by evidence, then promoted.
    spec_as(iris_dir, "3.0.0", {"C": 1.0, "log_features": True}, strategy="shadow")
    deployed(settings, registry, iris_dir, v3, 0)
    assert weights(registry) == {"1.0.0": 100, "3.0.0": 0}
    assert traffic(settings, v1, 250, seed=6) == {"1.0.0": 250}, "a shadow never answers a caller"
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "advance" and (out["weight_from"], out["weight_to"]) == (0, 20), out["summary"]
    assert weights(registry) == {"1.0.0": 80, "3.0.0": 20}
    traffic(settings, v1, 300, seed=3)
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "advance" and (out["weight_from"], out["weight_to"]) == (20, 50), out["summary"]
    assert weights(registry) == {"1.0.0": 50, "3.0.0": 50}
    answered = traffic(settings, v1, 100, seed=4)
    assert answered.get("3.0.0", 0) >= 35, answered
    out = evaluate(settings, registry, iris_dir)
    assert out["action"] == "promote", out["summary"]
    assert weights(registry) == {"3.0.0": 100}
    assert registry.alias("iris", "production").version == "3.0.0"  # type: ignore[union-attr]

    # Every decision is an event with its evidence; `ab report` writes the A/B report from them.
    actions = [e.action for e in registry.events("iris")]
    assert actions == ["rollback", "rollback", "rollback", "advance", "advance", "promote"]
    assert main(["ab", "report", "iris", "--out", str(tmp_path / "ab")]) == 0
    summary = json.loads((tmp_path / "ab" / "summary.json").read_text())
    history = [h["decision"]["action"] for h in summary["history"]]
    assert history == ["rollback", "rollback", "advance", "advance", "promote"]
    assert 'data-plot="gain"' in (tmp_path / "ab" / "report.html").read_text()
