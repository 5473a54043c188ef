"""The `local` target: replicas of the model server as processes on this machine, recorded in the registry."""

from __future__ import annotations

from legion_ci.config import Settings
from legion_ci.deploy.process import alive, start_server, stop_pid
from legion_ci.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.spec import ModelSpec


def server_args(spec: ModelSpec) -> list[str]:
    args = [] if spec.deploy.auth else ["--no-auth"]
    capture = spec.serving.capture
    args += ["--no-capture"] if not capture.enabled else ["--capture-rate", str(capture.sample_rate)]
    return args


def deploy(settings: Settings, registry: Registry, version: VersionRecord, spec: ModelSpec,
           weight: int) -> tuple[DeploymentRecord, bool]:
    """Start `spec.deploy.replicas` servers for `version`, or reuse a healthy deployment of it.

    Returns the deployment and whether it was newly started. Nothing else is stopped here:
    the old version keeps serving until promote retires it.
    """
    for existing in registry.deployments(version.model):
        if existing.version_id == version.id and existing.target == "local":
            if existing.endpoints and all(alive(e) for e in existing.endpoints):
                return existing, False
            retire(registry, existing)  # half-dead: replace it
    endpoints = []
    try:
        for replica in range(spec.deploy.replicas):
            log = settings.deployments_dir / version.model / f"{version.artifact_id}-{replica}.log"
            endpoints.append(start_server(version.path, log, {"LEGION_HOME": str(settings.home)}, server_args(spec)))
    except Exception:
        for endpoint in endpoints:
            stop_pid(int(endpoint["pid"]))
        raise
    record = registry.add_deployment(version.model, version.id, "local", weight, endpoints,
                                     {"version": version.version, "artifact_id": version.artifact_id})
    return record, True


def retire(registry: Registry, deployment: DeploymentRecord) -> None:
    """Stop a deployment's processes and mark it stopped."""
    for endpoint in deployment.endpoints or []:
        stop_pid(int(endpoint["pid"]))
    registry.update_deployment(deployment.id, status="stopped", weight=0)


def undeploy(registry: Registry, model: str) -> list[DeploymentRecord]:
    """Stop every active local deployment of `model`."""
    stopped = []
    for deployment in registry.deployments(model):
        if deployment.target == "local":
            retire(registry, deployment)
            stopped.append(deployment)
    return stopped
