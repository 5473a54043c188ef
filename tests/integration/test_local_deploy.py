"""The local target, deployed by legion-ci itself (legion_ci.deploy.rollout and .local): real model-server
processes started, recorded, rolled back, replaced and undeployed; the errors a person can cause, each with
a clear message. Then what is left of ansible/ for this file: the top-level playbooks, which refuse the
local target and hand Kubernetes to its playbooks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ConfigError, DeployError, NotFoundError
from legion_ci.core.processes import ours, ready
from legion_ci.core.registry import Registry, VersionRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.spec import ModelSpec, load_spec
from legion_ci.core.status import DeploymentStatus
from legion_ci.deploy import inventory, local, local_router, rollout
from legion_ci.deploy.ansible import PlaybookFailed, ansible_dir, run_playbook
from tests.integration.conftest import build_iris_artifact

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Place:
    settings: Settings
    registry: Registry
    version: VersionRecord
    spec: ModelSpec
    folder: Path
    lines: list[str]

    def play(self, playbook: str, variables: dict) -> object:
        files = inventory.write(self.folder, variables, f"test {playbook}")
        return run_playbook(playbook, files, self.lines.append)

    def deploy(
        self, version: VersionRecord | None = None, weight: int = 20, **spec_changes: object
    ) -> rollout.Deployed:
        spec = self.spec
        if spec_changes:
            spec = spec.model_copy(update={"deploy": replace_model(spec.deploy, **spec_changes)})
        return rollout.deploy(
            self.settings, self.registry, version or self.version, spec, weight, "local", self.folder, self.lines.append
        )

    def retire(self, status: DeploymentStatus, **select: object) -> list[int]:
        chosen = local.select(self.registry, **select)  # type: ignore[arg-type]
        return rollout.retire(self.settings, self.registry, chosen, status, self.folder, self.lines.append)


def _servers_of(artifact: str) -> list[int]:
    """PIDs of model servers running this artifact (the test's own, by its unique path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if artifact.encode() in cmdline and ours(int(entry.name)):
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    home = tmp_path_factory.mktemp("ansible-home")
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    registry = Registry.from_settings(settings)
    folder = build_iris_artifact(tmp_path_factory.mktemp("ansible-artifacts") / "iris", version="1.0.0")
    version = registry.register_version(Artifact.open(folder).manifest, str(folder))[0]
    spec = load_spec(ROOT / "examples" / "iris").spec
    spec = spec.model_copy(update={"deploy": replace_model(spec.deploy, replicas=2, auth=False)})
    yield Place(settings, registry, version, spec, home / "run", [])
    for d in registry.deployments():
        local.retire(settings, registry, [d], DeploymentStatus.STOPPED, drain_timeout=1)
    local_router.stop(settings)
    registry.close()


def replace_model(model: object, **changes: object) -> object:
    return model.model_copy(update=changes)  # type: ignore[attr-defined]


def test_deploy_runs_replicas_records_them_and_a_rerun_starts_nothing(place: Place) -> None:
    place.lines.clear()
    deployed = place.deploy()
    assert deployed.started and deployed.router_url
    (deployment,) = place.registry.deployments("iris")
    assert deployment.id == deployed.deployment.id
    assert deployment.weight == 100  # alone: all of the traffic, whatever the spec asks for
    assert len(deployment.endpoints) == 2 and all(ready(e["url"]) for e in deployment.endpoints)
    assert sorted(_servers_of(place.version.path)) == sorted(int(e["pid"]) for e in deployment.endpoints)
    assert any("2 replica(s) of iris 1.0.0 (01234567) ready" in line for line in place.lines), place.lines
    assert not list(place.folder.glob("*.yml"))  # no playbook files for the local target

    again = place.deploy()
    assert not again.started
    assert [d.id for d in place.registry.deployments("iris")] == [deployment.id]


def test_rollback_marks_the_candidate_rolled_back_and_gives_its_share_back(place: Place) -> None:
    if not place.registry.deployments("iris"):
        place.deploy()
    (production,) = place.registry.deployments("iris")
    other = build_iris_artifact(place.settings.home / "candidate", version="1.1.0")
    manifest = Artifact.open(other).manifest.model_copy(update={"artifact_id": "fedcba9876543210"})
    candidate_version = place.registry.register_version(manifest, str(other))[0]
    place.deploy(candidate_version, 20, replicas=1)
    weights = {d.detail["version"]: d.weight for d in place.registry.deployments("iris")}
    assert weights == {"1.0.0": 80, "1.1.0": 20}
    candidate = next(d for d in place.registry.deployments("iris") if d.version_id == candidate_version.id)
    assert place.retire(DeploymentStatus.ROLLED_BACK, model="iris", version="1.1.0") == [candidate.id]
    assert place.registry.deployment(candidate.id).status == "rolled-back"
    assert place.registry.deployment(production.id).weight == 100
    assert _servers_of(str(other)) == []


def test_redeploy_replaces_a_deployment_that_lost_a_replica(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    monkeypatch.setenv(local_router.ENV_PORT, "0")
    if not place.registry.deployments("iris"):
        place.deploy()
    (broken,) = place.registry.deployments("iris")
    os.kill(int(broken.endpoints[0]["pid"]), signal.SIGKILL)
    settings = place.settings.model_copy(update={"router_port": 0})  # what LEGION_ROUTER_PORT=0 gives a process
    deployed = rollout.deploy(
        settings, place.registry, place.version, place.spec, 20, "local", place.folder, place.lines.append
    )
    assert deployed.started and deployed.router_url
    assert place.registry.deployment(broken.id).status == "stopped"
    assert not ours(int(broken.endpoints[1]["pid"]))  # the surviving replica was stopped with it
    (fresh,) = place.registry.deployments("iris")
    assert fresh.id == deployed.deployment.id and fresh.weight == 100 and len(fresh.endpoints) == 2


def test_undeploy_drains_and_stops_them_and_a_rerun_changes_nothing(place: Place) -> None:
    if not place.registry.deployments("iris"):
        place.deploy()
    (deployment,) = place.registry.deployments("iris")
    assert place.retire(DeploymentStatus.STOPPED, ids=[deployment.id]) == [deployment.id]
    assert place.registry.deployment(deployment.id).status == "stopped"
    assert _servers_of(place.version.path) == []
    assert place.retire(DeploymentStatus.STOPPED, ids=[deployment.id]) == []


def test_a_missing_artifact_fails_naming_it_and_records_nothing(place: Place, tmp_path: Path) -> None:
    before = place.registry.deployments(active_only=False)
    gone = replace(place.version, id=999, path=str(tmp_path / "nonexistent"))
    with pytest.raises(DeployError) as failed:
        place.deploy(gone)
    assert f"no artifact at {tmp_path / 'nonexistent'} (no manifest.json there) for model iris version 1.0.0" in str(
        failed.value
    )
    assert place.registry.deployments(active_only=False) == before


def test_a_replica_that_cannot_start_stops_the_ones_that_did(place: Place, tmp_path: Path) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    other = build_iris_artifact(tmp_path / "busy", version="1.2.0")
    version = place.registry.register_version(
        Artifact.open(other).manifest.model_copy(update={"artifact_id": "a1b2c3d4e5f60718"}), str(other)
    )[0]
    flags = local.ServerFlags(auth=False)
    try:
        with pytest.raises(DeployError) as failed:
            local.deploy(place.settings, place.registry, version, 2, flags, 20, place.lines.append, ports=[0, taken])
    finally:
        holder.close()
    message = str(failed.value)
    assert "deploying iris 1.2.0 (a1b2c3d4) on this host failed" in message
    assert "Address already in use" in message
    assert "production is untouched" in message
    assert _servers_of(str(other)) == []  # replica 0 did start, and was stopped again
    assert all(d.version_id != version.id for d in place.registry.deployments())


@pytest.mark.parametrize("target", ["docker", "local"])
def test_the_playbooks_take_only_the_kubernetes_target(place: Place, target: str) -> None:
    variables = inventory.deploy_vars(place.settings, place.spec, place.version, 20, "local")
    with pytest.raises(PlaybookFailed, match=rf"legion_target is '{target}' .expected 'kubernetes'; the local"):
        place.play("deploy.yml", {**variables, "legion_target": target})


@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml", "undeploy.yml"])
def test_top_level_playbook_syntax(playbook: str) -> None:
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "--syntax-check", playbook],
        cwd=ansible_dir(),
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- errors a person can cause, outside the playbooks ----------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGION_HOME": str(home)}
    env.pop("LEGION_REGISTRY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_errors_name_the_bad_value(tmp_path: Path) -> None:
    bad_weight = _cli(tmp_path, "deployments", "set-weight", "1", "150")
    assert bad_weight.returncode == 2
    assert "invalid weight '150' (expected a whole percentage, 0-100)" in bad_weight.stderr
    no_run = _cli(tmp_path, "rollback")
    assert no_run.returncode == 2 and "give MODEL_DIR (its latest run), --run-id, or both" in no_run.stderr
    unknown = _cli(tmp_path, "undeploy", "nope")
    assert unknown.returncode == 2 and "no model 'nope' in the registry (models: none)" in unknown.stderr
    bad_port = subprocess.run(
        [sys.executable, "-m", "legion_ci", "router", "start"],
        capture_output=True,
        text=True,
        env={**os.environ, "LEGION_HOME": str(tmp_path), local_router.ENV_PORT: "eighty"},
    )
    assert bad_port.returncode == 2
    assert "LEGION_ROUTER_PORT='eighty' is not valid (expected a port from 0 to 65535)" in bad_port.stderr


def test_kubernetes_needs_the_packaged_image(place: Place) -> None:
    with pytest.raises(DeployError, match=r"has no image; .* run `legion-ci package` first"):
        inventory.deploy_vars(place.settings, place.spec, place.version, 20, "kubernetes")
    imaged = replace(place.version, image="127.0.0.1:5000/legion/iris:1.0.0", image_digest="sha256:abc")
    assert inventory.image_vars(imaged) == {
        "legion_image_repository": "127.0.0.1:5000/legion/iris",
        "legion_image_tag": "1.0.0",
        "legion_image_digest": "sha256:abc",
    }


def test_ansible_dir_must_hold_the_playbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_ANSIBLE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no Ansible playbooks in .* set LEGION_ANSIBLE_DIR"):
        ansible_dir(load_settings().ansible_dir)


def test_undeploy_of_an_unknown_model_is_refused(place: Place) -> None:
    with pytest.raises(NotFoundError, match="no model 'ghost'"):
        rollout.undeploy(place.settings, place.registry, "ghost", None, place.folder, place.lines.append)
