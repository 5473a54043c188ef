"""The `local` target on this machine, run in the deploying process itself: find what serves, start a
version's replicas, wait until each answers ready, record them with a traffic weight, retire.

No Ansible here (it stays for Kubernetes and the platform): on one host every step is a call into this
module, and a playbook would only add an ansible-playbook process and one `legion-ci` process per step
(seconds each) around the same calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import DeployError
from legion_ci.core.processes import alive, spawn_many, stop_pid, wait_ready
from legion_ci.core.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.core.settings import Settings, child_env
from legion_ci.core.spec import ModelSpec, ServingSpec
from legion_ci.core.status import DeploymentStatus
from legion_ci.core.store import is_remote, open_version
from legion_ci.deploy import local_router, weights
from legion_ci.deploy.drain import wait_drained

TARGET = "local"


@dataclass(frozen=True)
class ServerFlags:
    """The `legion-ci serve` options a deployment runs with (from the spec's deploy and serving sections):
    every one is passed on the command line, so each replica serves what legion.yaml says, not serve's
    defaults. The defaults here are ServingSpec's."""

    auth: bool = True
    capture: bool = True
    capture_rate: float = 1.0
    max_rows: int = ServingSpec.model_fields["max_rows"].default
    max_body_bytes: int = ServingSpec.model_fields["max_body_bytes"].default

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ServerFlags:
        serving = spec.serving
        return cls(
            auth=spec.deploy.auth,
            capture=serving.capture.enabled,
            capture_rate=serving.capture.sample_rate,
            max_rows=serving.max_rows,
            max_body_bytes=serving.max_body_bytes,
        )

    def args(self) -> list[str]:
        out = [] if self.auth else ["--no-auth"]
        out += ["--capture-rate", str(self.capture_rate)] if self.capture else ["--no-capture"]
        return [*out, "--max-rows", str(self.max_rows), "--max-body-bytes", str(self.max_body_bytes)]


def find_serving(registry: Registry, version_id: int, target: str = TARGET) -> DeploymentRecord | None:
    """An active deployment of this version whose every replica is alive and ready (local), or None."""
    for d in registry.deployments():
        if d.version_id != version_id or d.target != target:
            continue
        if target != TARGET or (d.endpoints and all(alive(e) for e in d.endpoints)):
            return d
    return None


def spawn_replicas(
    settings: Settings, artifact_path: str, replicas: int, flags: ServerFlags, ports: list[int] | None = None
) -> list[dict[str, Any]]:
    """Start `replicas` model servers at once, detached (they outlive the caller); returns their
    {url, pid, port, log} once each listens, or stops them all if one fails. Readiness is the caller's
    to check (the Ansible role polls /health/ready)."""
    art = Artifact.open(artifact_path)
    if replicas < 1:
        raise DeployError(f"replicas: {replicas} (expected 1 or more)")
    ports = list(ports or [])
    jobs = []
    for i in range(replicas):
        port = ports[i] if i < len(ports) else 0
        log = settings.deployments_dir / art.name / f"{art.id}-{i}.log"
        jobs.append((["serve", str(art.path), "--host", "127.0.0.1", "--port", str(port), *flags.args()], log))
    return spawn_many(jobs, child_env(settings))


def deploy(
    settings: Settings,
    registry: Registry,
    version: VersionRecord,
    replicas: int,
    flags: ServerFlags,
    weight: int,
    log: Callable[[str], None],
    ports: list[int] | None = None,
) -> DeploymentRecord:
    """Start `replicas` servers of `version` at once, wait until every one answers /health/ready, then
    record them at `weight` percent (the router follows within half a second). If a replica fails to
    start or to become ready, every one started here is stopped and nothing is recorded."""
    if not is_remote(version.path) and not (Path(version.path) / "manifest.json").is_file():
        raise DeployError(
            f"no artifact at {version.path} (no manifest.json there) "
            f"for model {version.model} version {version.version}"
        )
    artifact = open_version(settings, version).path  # from the store, checked, via this host's cache
    try:
        endpoints = spawn_replicas(settings, str(artifact.resolve()), replicas, flags, ports)
    except DeployError as exc:
        raise DeployError(f"deploying {version.label} on this host failed: {exc}; production is untouched") from None
    try:
        for endpoint in endpoints:
            wait_ready(endpoint)
        log(f"{len(endpoints)} replica(s) of {version.label} ready: {', '.join(e['url'] for e in endpoints)}")
        return record(registry, version, endpoints, weight)
    except BaseException:
        for endpoint in endpoints:
            stop_pid(int(endpoint["pid"]))
        raise


def record(
    registry: Registry, version: VersionRecord, endpoints: list[dict[str, Any]], weight: int, target: str = TARGET
) -> DeploymentRecord:
    """Record a started deployment and give it `weight` percent of its model's traffic, the others
    sharing the rest (all of it when nothing else serves); the router sees both changes at once."""
    if not 0 <= weight <= weights.TOTAL:
        raise DeployError(f"traffic weight {weight} is not a percentage (expected 0-100)")
    if not endpoints:
        raise DeployError(f"no replica endpoints given for {version.label}")
    others = {d.id: d.weight for d in registry.deployments(version.model) if d.target == target}
    detail = {"version": version.version, "artifact_id": version.artifact_id}
    created = registry.add_deployment(version.model, version.id, target, 0, endpoints, detail)
    registry.set_weights(weights.rebalance(others, {created.id: weights.first_weight(weight, others)}))
    return registry.deployment(created.id)


def set_weight(registry: Registry, deployment_id: int, weight: int) -> dict[int, int]:
    """Give one deployment `weight` percent of its model's traffic, scaling the others to the rest."""
    target = registry.deployment(deployment_id)
    others = {d.id: d.weight for d in registry.deployments(target.model) if d.target == target.target}
    new = weights.rebalance(others, {deployment_id: weight})
    registry.set_weights(new)
    return new


def retire(
    settings: Settings,
    registry: Registry,
    deployments: list[DeploymentRecord],
    status: DeploymentStatus = DeploymentStatus.STOPPED,
    drain_timeout: float = 30.0,
) -> list[DeploymentRecord]:
    """Take deployments out of service without failing a request: weight 0 (the others take their
    share), wait for the router to drain them, stop their processes, mark them `status`."""
    if not deployments:
        return []
    ids = {d.id for d in deployments}
    for model in {d.model for d in deployments}:
        current = {d.id: d.weight for d in registry.deployments(model)}
        registry.set_weights(weights.rebalance(current, {i: 0 for i in ids if i in current}))
    router = local_router.running(settings)
    wait_drained(router.url if router else None, ids, drain_timeout)
    for d in deployments:
        if d.target == TARGET:
            for endpoint in d.endpoints or []:
                stop_pid(int(endpoint["pid"]))
        registry.update_deployment(d.id, status=status, weight=0)
    return [registry.deployment(d.id) for d in deployments]


def select(
    registry: Registry,
    model: str | None = None,
    version: str | None = None,
    ids: list[int] | None = None,
    target: str | None = None,
) -> list[DeploymentRecord]:
    """Active deployments by id, or of a model (and version string); raises when ids are unknown."""
    if ids:
        found = [registry.deployment(i) for i in ids]
        return [d for d in found if d.status.active]
    if not model:
        raise DeployError("name deployments by id, or a model (and optionally a version)")
    return [
        d
        for d in registry.deployments(model)
        if (version is None or d.detail.get("version") == version) and (target is None or d.target == target)
    ]
