"""A shadow rollout on the local target, through the deploy core: the candidate is deployed at weight 0 with
its mirror share from legion.yaml's rollout.shadow_share, the router copies that share to it while callers
get production's answers, smoke passes it by its pinned path, and its first canary step ends the copies."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.core.spec import load_spec
from legion_ci.core.status import DeploymentStatus
from legion_ci.deploy import local, local_router, rollout
from legion_ci.feedback.capture import read_store, store_dir
from legion_ci.quality.smoke import check_router
from tests.integration.conftest import build_iris_artifact

ROOT = Path(__file__).resolve().parents[2]
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    old_port = os.environ.pop(local_router.ENV_PORT, None)
    yield tmp_path / "home"
    if old_port is not None:
        os.environ[local_router.ENV_PORT] = old_port


def test_a_shadow_candidate_gets_copies_not_callers(home: Path, tmp_path: Path) -> None:
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}").model_copy(update={"router_port": 0})
    registry = Registry.from_settings(settings)
    lines: list[str] = []
    spec = load_spec(ROOT / "examples" / "iris").spec
    spec = spec.model_copy(
        update={
            "deploy": spec.deploy.model_copy(update={"replicas": 1, "auth": False}),
            "rollout": spec.rollout.model_copy(update={"strategy": "shadow", "shadow_share": 0.5}),
        }
    )
    versions = []
    for v in ("1.0.0", "1.1.0"):
        folder = build_iris_artifact(tmp_path / v, version=v)
        manifest = Artifact.open(folder).manifest.model_copy(update={"artifact_id": f"{v.replace('.', '')}5badow"})
        versions.append(registry.register_version(manifest, str(folder))[0])
    try:
        production = rollout.deploy(settings, registry, versions[0], spec, 0, "local", tmp_path / "d1", lines.append)
        assert production.deployment.weight == 100  # alone: all of it, and no mirror share for itself
        assert "mirror" not in registry.deployment(production.deployment.id).detail
        shadow = rollout.deploy(settings, registry, versions[1], spec, 0, "local", tmp_path / "d2", lines.append)
        record = registry.deployment(shadow.deployment.id)
        assert (record.weight, record.detail.get("mirror")) == (0, 50)
        router = shadow.router_url
        assert router is not None
        deadline = time.monotonic() + 10
        while True:  # the router re-reads the registry every half second
            routes = httpx.get(f"{router}/routes").json()["models"]["iris"]["deployments"]
            split = {d["version"]: (d["weight"], d["mirror"]) for d in routes}
            if split == {"1.0.0": (100, 0), "1.1.0": (0, 50)} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert split == {"1.0.0": (100, 0), "1.1.0": (0, 50)}
        assert check_router(router, Artifact.open(versions[1].path), {}, 0) == []  # smoke: pinned path only
        with httpx.Client(timeout=10) as client:
            seen = Counter(
                client.post(f"{router}/api/model/iris/invoke", json=ROW).headers["x-model-version"] for _ in range(20)
            )
        assert seen == {"1.0.0": 20}
        deadline = time.monotonic() + 15
        while True:  # copies go out after the answers: half of the 20 requests, exactly
            captured = [r for _, r in read_store(store_dir(settings.feedback_dir, "iris")) if r.get("shadow")]
            if len(captured) >= 10 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(captured) == 10 and {r["version"] for r in captured} == {"1.1.0"}
        rollout.reweight(settings, registry, record, 5, tmp_path / "step", lines.append)
        stepped = registry.deployment(record.id)
        assert stepped.weight == 5 and "mirror" not in stepped.detail  # a canary now: no more copies
    finally:
        for d in registry.deployments():
            local.retire(settings, registry, [d], DeploymentStatus.STOPPED, drain_timeout=1)
        local_router.stop(settings)
        registry.close()
