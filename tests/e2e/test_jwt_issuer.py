"""With LEGION_JWT_ISSUER and a non-default LEGION_JWT_AUDIENCE set, the whole local pipeline passes: perf
and smoke mint their tokens through legion_ci.auth.tokens with the configured audience and issuer, so the
real model servers they start accept them (smoke used to mint with the default audience and no issuer, and
every deploy failed its smoke test and rolled back)."""

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

from legion_ci.auth.jwt import create_token, load_or_create_secret
from legion_ci.auth.tokens import mint_model_token
from legion_ci.core.artifact import Artifact
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, env_name, load_settings

ISSUER = "https://issuer.legion.example"
AUDIENCE = "iris-callers"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    return {**env, "LEGION_HOME": str(home), "LEGION_JWT_ISSUER": ISSUER, "LEGION_JWT_AUDIENCE": AUDIENCE}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=_env(home), timeout=600
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    cli(home, "undeploy", "iris")


@pytest.fixture
def issuer_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    for key, value in _env(home).items():
        if key.startswith("LEGION_"):
            monkeypatch.setenv(key, value)
    return load_settings()


def test_deploy_and_smoke_pass_with_an_issuer_and_audience_set(
    home: Path, iris_dir: Path, issuer_settings: Settings
) -> None:
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["perf"] = {**spec.get("perf", {}), "users": 4, "spawn_rate": 4, "duration": 5}  # real load, briefly
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
    done = cli(home, "run", str(iris_dir), "--json")
    assert done.stdout.strip(), done.stderr
    summary = json.loads(done.stdout)
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert done.returncode == 0, summary
    assert statuses["perf"] == statuses["deploy"] == statuses["smoke"] == statuses["promote"] == "passed"

    registry = Registry.from_settings(issuer_settings)
    production = registry.alias("iris", "production")
    assert production is not None
    (deployment,) = [d for d in registry.deployments("iris") if d.version_id == production.id]
    assert deployment.status == "serving"  # not rolled back
    art = Artifact.open(production.path)
    url = f"{deployment.endpoints[0]['url']}/api/model/iris/{art.version}/invoke"
    body = {"instances": art.schema.example}

    def call(token: str) -> httpx.Response:
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    # the servers really check both: a token minted the old smoke way is refused ...
    old_way = create_token(load_or_create_secret(issuer_settings), "iris", None, ttl_seconds=300)
    refused = call(old_way)
    assert refused.status_code == 401, refused.text
    # ... and the one helper's token, with the configured audience and issuer, is answered
    answered = call(mint_model_token(issuer_settings, "iris", None, 300))
    assert answered.status_code == 200, answered.text
    assert answered.json()["predictions"] == art.schema.example_predictions
    registry.close()
