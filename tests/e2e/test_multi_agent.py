"""The multi-agent test (issue 10): the rendered push and retrain Jenkinsfiles of examples/iris, each stage
run as Jenkins would on a pod agent: its own fresh, empty workspace and $LEGION_HOME (deleted after the
stage), sharing only the PostgreSQL registry and the S3 store. The `sh` step of each stage and the
`environment` block come out of the rendered text, not from a second list written here."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from legion_ci.auth.jwt import create_token
from legion_ci.core.registry import Registry
from tests.integration import test_registry_postgres
from tests.s3 import BUCKET, S3Server

pg_url = test_registry_postgres.pg_url  # the throwaway PostgreSQL cluster, as a fixture of this module
BIN = Path(sys.executable).parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
JWT_SECRET = "multi-agent-secret-0123456789abcdef0123456789"
ROWS = [([5.1, 3.5, 1.4, 0.2], 0), ([6.7, 3.1, 4.4, 1.4], 1), ([6.3, 3.3, 6.0, 2.5], 2)]


@dataclass(frozen=True)
class Stage:
    name: str
    sh: str


@dataclass(frozen=True)
class Jenkinsfile:
    name: str
    environment: dict[str, str]  # name -> Groovy expression, as rendered
    parameters: dict[str, str]  # build parameter -> default
    stages: list[Stage]


def parse(job: str, text: str) -> Jenkinsfile:
    """The environment block, the parameters' defaults and each stage's one `sh` step of a rendered file."""
    env_block = re.search(r"^    environment \{\n(.*?)^    \}", text, re.S | re.M)
    assert env_block, "no environment block"
    environment = {}
    for line in env_block[1].splitlines():
        line = line.strip()
        if line and not line.startswith("//"):
            name, value = (part.strip() for part in line.split("=", 1))
            environment[name] = value
    parameters = {}
    for m in re.finditer(r"name: '(\w+)',\s*(?:choices: \['([^']*)'|defaultValue: '([^']*)')", text):
        parameters[m[1]] = m[2] if m[2] is not None else m[3]
    stages = [Stage(m[1], m[2]) for m in re.finditer(r"stage\('([^']+)'\) \{\s*steps \{\s*sh '([^']+)'\s*\}", text)]
    assert stages, "no stages with an sh step"
    return Jenkinsfile(job, environment, parameters, stages)


class Agents:
    """Runs stages as Jenkins agents would. A pod agent gets a new workspace each time (a checkout of the
    model repository and nothing else), deleted after the stage: only the registry and the store are shared.
    The stages that act on the `local` deploy target (deploy, smoke, promote) run on the host agent: the
    local target's servers and router are processes of the machine that deploys them, so that agent's
    workspace outlives a stage (its checkout is fresh each time). On the kubernetes target they too would
    be pods."""

    HOST_STAGES = ("Deploy", "Smoke test", "Promote")

    def __init__(self, tmp: Path, model_dir: Path, credentials: dict[str, str], shared_env: dict[str, str]) -> None:
        self.tmp, self.model_dir, self.credentials, self.shared_env = tmp, model_dir, credentials, shared_env
        self.host = tmp / "host-agent"
        self.host_home: Path | None = None
        self.count = 0

    def environment(self, job: Jenkinsfile, workspace: Path, params: dict[str, str]) -> dict[str, str]:
        env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), **self.shared_env}
        env.update({**job.parameters, **params})
        values = {"WORKSPACE": str(workspace), "GIT_COMMIT": COMMIT}
        for name, expr in job.environment.items():
            cred = re.fullmatch(r"credentials\('([^']+)'\)", expr)
            if cred:
                if cred[1] in self.credentials:
                    env[name] = self.credentials[cred[1]]
                continue
            value = expr[1:-1]  # '...' or "..."
            value = value.replace("${new Date().format('yyyyMMdd')}", datetime.date.today().strftime("%Y%m%d"))
            value = re.sub(r"\$\{env\.(\w+)\}", lambda m: values[m[1]], value)
            assert "${" not in value, f"{name} = {expr}: an expression this test does not evaluate"
            env[name] = value
        return env

    def run(
        self, job: Jenkinsfile, stage: str, params: dict[str, str] | None = None, pod: bool | None = None
    ) -> subprocess.CompletedProcess[str]:
        step = next(s for s in job.stages if s.name == stage)
        self.count += 1
        on_pod = stage not in self.HOST_STAGES if pod is None else pod
        workspace = self.tmp / f"pod-{self.count}-{stage.lower().replace(' ', '-')}" if on_pod else self.host
        env = self.environment(job, workspace, params or {})
        home = Path(env["LEGION_HOME"])
        if not on_pod:
            self.host_home = home
        shutil.copytree(self.model_dir, workspace / env["LEGION_MODEL_DIR"], dirs_exist_ok=True)  # the checkout
        began = time.monotonic()
        try:
            return subprocess.run(
                ["bash", "-c", step.sh], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
            )
        finally:
            where = "a fresh pod" if on_pod else "the host"
            print(f"  {job.name} / {stage} on {where}: {time.monotonic() - began:.1f} s")
            if on_pod:
                assert not (home / "artifacts").exists()  # the artifact went to the store, not the agent
                shutil.rmtree(workspace)  # the pod is gone, and its LEGION_HOME with it
                shutil.rmtree(home, ignore_errors=True)

    def passes(self, job: Jenkinsfile, stage: str, params: dict[str, str] | None = None) -> str:
        done = self.run(job, stage, params)
        assert done.returncode == 0, f"{stage}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr


def _traffic(url: str, version: str, n: int) -> list[str]:
    """An application calling the deployed server, then posting the ground truth back."""
    token = create_token(JWT_SECRET, "iris", version, ttl_seconds=600)
    base = f"{url}/api/model/iris/{version}"
    ids = []
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(n):
            rid = f"agent-{i}-{uuid.uuid4().hex[:8]}"
            row, truth = ROWS[i % len(ROWS)]
            answer = client.post(f"{base}/invoke", json={"instances": [row]}, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            posted = client.post(f"{base}/feedback", json={"request_id": rid, "ground_truth": truth})
            assert posted.status_code == 200, posted.text
            ids.append(rid)
    return ids


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"server {pid} still running 30 s after SIGTERM")


def _shipped_ids(s3: S3Server, prefix: str) -> set[str]:
    client = s3.client()
    found: set[str] = set()
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/feedback/iris/").get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        found.update(m.decode() for m in re.findall(rb'"kind":"prediction","request_id":"([^"]+)"', body))
    return found


@pytest.fixture
def rendered(tmp_path: Path, iris_dir: Path) -> dict[str, Jenkinsfile]:
    out = tmp_path / "rendered"
    done = subprocess.run(
        [str(BIN / "legion-ci"), "render", str(iris_dir), "--out", str(out), "--scm-url", "file:///dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {
        "push": parse("push", (out / "iris" / "Jenkinsfile").read_text()),
        "retrain": parse("retrain", (out / "iris" / "retrain.Jenkinsfile").read_text()),
    }


@pytest.fixture
def agents(tmp_path: Path, iris_dir: Path, pg_url: str, s3_server: S3Server) -> Iterator[Agents]:
    store = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    shared = {**s3_server.env, "LEGION_STORE_URL": store, "LEGION_SHIP_INTERVAL": "1h"}
    credentials = {"legion-registry-url": pg_url, "legion-jwt-secret": JWT_SECRET}
    agents = Agents(tmp_path, iris_dir, credentials, shared)
    yield agents
    if agents.host_home is not None:  # stop what the host agent deployed
        subprocess.run(
            [str(BIN / "legion-ci"), "undeploy", "iris"],
            env={**os.environ, **shared, "LEGION_HOME": str(agents.host_home), "LEGION_REGISTRY_URL": pg_url},
            capture_output=True,
            timeout=120,
        )


def _set_params(model_dir: Path, **params: float) -> None:
    spec = yaml.safe_load((model_dir / "legion.yaml").read_text())
    spec["train"]["params"].update(params)
    spec["gate"]["thresholds"] = {}
    (model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))


def test_push_then_retrain_with_every_stage_on_a_fresh_agent(
    rendered: dict[str, Jenkinsfile], agents: Agents, pg_url: str, s3_server: S3Server
) -> None:
    push, retrain = rendered["push"], rendered["retrain"]
    skip_perf = {"LEGION_SKIP_PERF_REASON": "multi-agent test: the perf stage has its own tests"}
    _set_params(agents.model_dir, C=0.001)  # a weak first model, so the retrain on feedback can beat it
    started = time.monotonic()
    for stage in push.stages:
        agents.passes(push, stage.name, skip_perf)
    print(f"\npush pipeline, {len(push.stages)} stages on fresh agents: {time.monotonic() - started:.1f} s")
    prefix = agents.shared_env["LEGION_STORE_URL"].removeprefix(f"s3://{BUCKET}/")
    registry = Registry(pg_url)
    try:
        production = registry.alias("iris", "production")
        assert production is not None and production.path.startswith(agents.shared_env["LEGION_STORE_URL"])
        (deployment,) = [d for d in registry.deployments("iris") if d.version_id == production.id]

        # "Restart from Stage" of deploy on a new, empty agent: finds the artifact, deploys nothing twice
        again = agents.run(push, "Deploy", skip_perf, pod=True)
        assert again.returncode == 0, again.stdout + again.stderr
        assert [d.id for d in registry.deployments("iris")] == [deployment.id]

        # traffic with ground truth, then the server is stopped with SIGTERM: its segments are in the store
        ids = _traffic(deployment.endpoints[0]["url"], production.version, 12)
        pid = int(deployment.endpoints[0]["pid"])
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid)
        assert set(ids) <= _shipped_ids(s3_server, prefix)

        # the retrain job, each stage on yet another fresh agent, trains on that feedback from the store
        agents.passes(push, "Deploy", skip_perf)  # production back first (its server was stopped above)
        _set_params(agents.model_dir, C=1.0)
        started = time.monotonic()
        for stage in retrain.stages:
            out = agents.passes(retrain, stage.name, skip_perf)
            if stage.name == "Train":
                assert "feedback: wrote 12 rows (12 labelled requests)" in out, out
                print("  " + next(line for line in out.splitlines() if "feedback" in line).strip())
        print(f"retrain pipeline, {len(retrain.stages)} stages on fresh agents: {time.monotonic() - started:.1f} s")
        versions = registry.versions("iris")
        assert len(versions) == 2
        candidate = versions[-1]
        assert candidate.path.startswith(agents.shared_env["LEGION_STORE_URL"])
        assert any(p.endswith("feedback.csv") for p in candidate.manifest.data.extra)

        # an artifact object altered in the store: the next stage on a fresh agent stops with exit 2 naming it
        client = s3_server.client()
        key = candidate.path.removeprefix(f"s3://{BUCKET}/") + "/model.skops"
        client.put_object(Bucket=BUCKET, Key=key, Body=b"tampered")
        gate = agents.run(retrain, "Quality gate", skip_perf)
        assert gate.returncode == 2, gate.stdout + gate.stderr
        assert f"{candidate.path}: file model.skops has sha256" in gate.stderr
    finally:
        registry.close()
