"""The local rollout under continuous load, with the real stages (each candidate through the real gate; perf
skipped with its reason), Ansible and processes.

A client thread calls the router's stable URL for the whole test. v1 is deployed and promoted; v2 is
deployed at 20% (about a fifth of the answers come from it), smoke-tested and promoted (then all answers
come from it); v3, whose artifact's example predictions were altered so its smoke test fails, is deployed
and rolled back by the failed smoke test while v2 keeps serving; finally `legion-ci rollback` of v2's run
puts v1 back. Not one request fails."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from legion_ci.auth.jwt import create_token, load_or_create_secret
from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import StageFailed
from legion_ci.core.registry import Registry, versions
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import StageStatus
from legion_ci.core.store import manifest_digest
from legion_ci.deploy import local_router, rollout
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions

pytestmark = pytest.mark.slow


@dataclass
class Load:
    """Requests to the stable URL, one after another, from a background thread until stopped."""

    url: str
    headers: dict[str, str]
    answers: list[str] = field(default_factory=list)  # the version of each answer, in order
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        with httpx.Client(timeout=30, headers=self.headers) as client:
            while not self.stop.is_set():
                try:
                    answer = client.post(self.url, json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if answer.status_code == 200:
                    self.answers.append(answer.headers["x-model-version"])
                else:
                    self.failures.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
                time.sleep(0.008)  # ~100 requests a second: steady load that leaves the CPUs to the deploys

    def next(self, count: int, timeout: float = 120.0) -> list[str]:
        """The versions of the next `count` answers from now."""
        start = len(self.answers)
        deadline = time.monotonic() + timeout
        while len(self.answers) < start + count:
            assert time.monotonic() < deadline, f"only {len(self.answers) - start} answers in {timeout}s"
            assert not self.failures, self.failures
            time.sleep(0.05)
        return self.answers[start : start + count]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iris_dir: Path) -> Iterator[tuple[Settings, Registry]]:
    home = tmp_path / "home"
    monkeypatch.setenv("LEGION_HOME", str(home))
    monkeypatch.delenv("LEGION_REGISTRY_URL", raising=False)
    monkeypatch.setenv(local_router.ENV_PORT, "0")
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["deploy"].update(replicas=1, traffic_weight=20, auth=True)
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
    settings = load_settings()
    registry = Registry.from_settings(settings)
    yield settings, registry
    rollout.undeploy(settings, registry, "iris", None, home / "teardown", lambda _line: None)
    local_router.stop(settings)
    registry.close()


def _set_version(model_dir: Path, version: str, replicas: int = 1) -> None:
    spec = yaml.safe_load((model_dir / "legion.yaml").read_text())
    spec["version"] = version
    spec["deploy"]["replicas"] = replicas
    (model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))


# The runner refuses to deploy a candidate whose gate and perf have not passed: the gate runs for real, perf is
# skipped with its reason (tests/integration/test_perf_stage.py runs it for real).
OPTIONS = RunOptions(skip_perf_reason="iris meets its SLA in tests/integration/test_perf_stage.py")


def _stage(settings: Settings, registry: Registry, name: str, model_dir: Path, run_id: str) -> str:
    _, result = single_stage(
        settings, registry, name, str(model_dir), run_id, "push", OPTIONS, PlainReporter(verbose_logs=True)
    )
    assert result.status == (StageStatus.SKIPPED if name == "perf" else StageStatus.PASSED), result.summary
    return result.summary


def _trained_and_checked(settings: Settings, registry: Registry, model_dir: Path, run_id: str) -> None:
    for name in ("train", "gate", "perf"):
        _stage(settings, registry, name, model_dir, run_id)


def _break_examples(artifact_path: str) -> None:
    """Alter the artifact's recorded example predictions, so the served answers no longer match them."""
    manifest_file = Path(artifact_path) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    schema = manifest["model"]["input_schema"]  # manifest schema 2: the export under "model"
    schema["example_predictions"] = [(int(p) + 1) % 3 for p in schema["example_predictions"]]
    manifest_file.write_text(json.dumps(manifest))


def _reregister_manifest(registry: Registry, version_id: int, artifact_path: str) -> None:
    """Record the altered manifest's digest, as if train had published it so: a model registered with wrong
    example predictions, which only the smoke test can catch. (A manifest changed *after* registration is
    refused before use; tests/integration/test_store.py shows that.)"""
    with registry.tx() as conn:
        conn.execute(
            versions.update()
            .where(versions.c.id == version_id)
            .values(manifest_digest=manifest_digest(Path(artifact_path)))
        )


# Three real gates on top of three deploys: on a loaded machine (gate 40-50 s, train 30-60 s here) this runs
# past the suite's default 600 s.
@pytest.mark.timeout(1500)
def test_deploy_at_20_percent_promote_and_failed_smoke_rollback_under_load(
    world: tuple[Settings, Registry], iris_dir: Path
) -> None:
    settings, registry = world

    # v1: the whole push flow's deploy half; alone, it takes all the traffic.
    _set_version(iris_dir, "1.0.0")
    _trained_and_checked(settings, registry, iris_dir, "r1")
    for name in ("deploy", "smoke", "promote"):
        _stage(settings, registry, name, iris_dir, "r1")
    router = local_router.running(settings)
    assert router is not None
    token = create_token(load_or_create_secret(settings), "iris", None, ttl_seconds=3600)
    load = Load(rollout.stable_url(router.url, "iris") or "", {"Authorization": f"Bearer {token}"})
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        assert set(load.next(50)) == {"1.0.0"}

        # v2 at 20% beside v1: about a fifth of the answers.
        _set_version(iris_dir, "2.0.0", replicas=2)
        _trained_and_checked(settings, registry, iris_dir, "r2")
        summary = _stage(settings, registry, "deploy", iris_dir, "r2")
        assert "at 20% beside 1.0.0 at 80%" in summary and "stable URL" in summary
        window = load.next(400)
        share = window.count("2.0.0") / len(window)
        assert 0.15 <= share <= 0.25, f"v2 answered {share:.1%} of {len(window)} requests"
        assert set(window) == {"1.0.0", "2.0.0"}
        _stage(settings, registry, "smoke", iris_dir, "r2")

        # A second deploy of the serving candidate starts nothing.
        again = _stage(settings, registry, "deploy", iris_dir, "r2")
        assert again.startswith("already serving")
        assert len(registry.deployments("iris")) == 2

        # Promote: every answer from v2; v1 drained and stopped; a second promote changes nothing.
        _stage(settings, registry, "promote", iris_dir, "r2")
        assert set(load.next(100)) == {"2.0.0"}
        assert [d.detail["version"] for d in registry.deployments("iris")] == ["2.0.0"]
        assert "nothing to promote" in _stage(settings, registry, "promote", iris_dir, "r2")

        # v3 fails its smoke test: rolled back, v2 keeps all the traffic.
        _set_version(iris_dir, "3.0.0")
        _trained_and_checked(settings, registry, iris_dir, "r3")
        v3 = registry.version_by_id(int(registry.stages("r3")["train"].outputs["version_id"]))
        _break_examples(v3.path)
        _reregister_manifest(registry, v3.id, v3.path)
        assert "at 20% beside 2.0.0 at 80%" in _stage(settings, registry, "deploy", iris_dir, "r3")
        assert "3.0.0" in load.next(50)  # v3 does answer while it is deployed
        with pytest.raises(StageFailed, match=r"row \d: predicted .*rolled back iris 3\.0\.0"):
            _stage(settings, registry, "smoke", iris_dir, "r3")
        assert set(load.next(100)) == {"2.0.0"}
        statuses = {d.detail["version"]: d.status for d in registry.deployments("iris", active_only=False)}
        assert statuses == {"1.0.0": "stopped", "2.0.0": "serving", "3.0.0": "rolled-back"}
        assert registry.alias("iris", "production").version == "2.0.0"  # type: ignore[union-attr]
        assert Artifact.open(v3.path).version == "3.0.0"

        # Rolling back the promoted v2 (as Jenkins would, by run id) brings v1 back, still without a failure.
        done = subprocess.run(
            [sys.executable, "-m", "legion_ci", "rollback", "--run-id", "r2", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "production is iris 1.0.0" in json.loads(done.stdout)["summary"]
        assert set(load.next(100)) == {"1.0.0"}
        assert registry.alias("iris", "production").version == "1.0.0"  # type: ignore[union-attr]
        assert [(d.detail["version"], d.weight) for d in registry.deployments("iris")] == [("1.0.0", 100)]
    finally:
        load.stop.set()
        thread.join(timeout=30)

    assert load.failures == [], load.failures[:10]
    assert len(load.answers) >= 1000, f"only {len(load.answers)} requests during the test"
    print(
        f"\nrollout under load: {len(load.answers)} answers, {len(load.failures)} failed; "
        f"v2 answered {share:.1%} of {len(window)} requests while deployed at 20%"
    )
