"""Traffic beyond weights: a deployment's shadow (mirror) share, and on Kubernetes the Gateway API HTTPRoute
that carries a model's weights, mirror and session persistence.

Local target: the router follows the registry (weights, and `detail.mirror` for shadow); nothing else to do.
Kubernetes with a Gateway (Settings.gateway_release set): the cluster's own data plane splits the traffic.
After every traffic change the deploy core writes the model's route into the values of that legion-platform
release (`gateway.routes.<model>`) with ansible/route.yml (helm upgrade --reuse-values), and the chart
renders one HTTPRoute per model (helm/legion-platform/templates/httproute.yaml): backendRefs weighted as the
registry says, a RequestMirror filter per shadow deployment, and session persistence by the sticky header or
cookie (Settings.router_sticky_header/cookie; an experimental-channel field of the Gateway API). Without
a Gateway release the platform's Python router does it from the registry, as on the local target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from legion_ci.core.errors import DeployError
from legion_ci.core.registry import DeploymentRecord, Registry
from legion_ci.core.settings import Settings

Log = Callable[[str], None]
KUBERNETES = "kubernetes"
MODEL_PORT = 80  # the legion-model chart's service.port default


def set_mirror(registry: Registry, deployment_id: int, percent: int) -> DeploymentRecord:
    """Copy `percent` of the model's routed requests to this deployment (0 stops it). The copies are sent
    after the caller's answer and their answers dropped; the deployment's own weight is unchanged (a shadow
    usually has weight 0)."""
    if not 0 <= percent <= 100:
        raise DeployError(f"mirror share {percent} of deployment {deployment_id} is not a percentage (expected 0-100)")
    record = registry.deployment(deployment_id)
    detail = {k: v for k, v in record.detail.items() if k != "mirror"}
    if percent:
        detail["mirror"] = percent
    registry.update_deployment(deployment_id, detail=detail)
    return registry.deployment(deployment_id)


def session(settings: Settings) -> dict[str, str] | None:
    """The HTTPRoute sessionPersistence of the sticky settings: by header first, else by cookie."""
    if settings.router_sticky_header:
        return {"type": "Header", "sessionName": settings.router_sticky_header}
    if settings.router_sticky_cookie:
        return {"type": "Cookie", "sessionName": settings.router_sticky_cookie}
    return None


def _service(deployment: DeploymentRecord) -> str:
    release = deployment.detail.get("release")
    if not release:  # as rollout.release_name names it
        release = re.sub(r"[^a-z0-9-]", "-", f"legion-{deployment.model}-{deployment.detail.get('version')}".lower())
    return str(release)


def route_values(settings: Settings, registry: Registry, model: str) -> dict[str, Any] | None:
    """`gateway.routes.<model>` of the legion-platform chart from the registry's active Kubernetes deployments
    of `model`, or None when none carries traffic (the route is then removed)."""
    active = [d for d in registry.deployments(model) if d.target == KUBERNETES]
    backends = [
        {
            "service": _service(d),
            "namespace": str(d.detail.get("namespace", "legion")),
            "port": MODEL_PORT,
            "version": str(d.detail.get("version")),
            "weight": int(d.weight),
        }
        for d in active
        if d.weight > 0
    ]
    if not backends:
        return None
    mirrors = [
        {
            "service": _service(d),
            "namespace": str(d.detail.get("namespace", "legion")),
            "port": MODEL_PORT,
            "version": str(d.detail.get("version")),
            "percent": int(d.detail["mirror"]),
        }
        for d in active
        if int(d.detail.get("mirror") or 0) > 0 and d.weight == 0
    ]
    out: dict[str, Any] = {"backends": backends, "mirrors": mirrors}
    sticky = session(settings)
    if sticky:
        out["session"] = sticky
    return out


def route_vars(settings: Settings, registry: Registry, model: str) -> dict[str, Any]:
    """Variables of ansible/route.yml: the platform release to upgrade and the model's route (null: remove)."""
    if not settings.gateway_release:
        raise DeployError("no Gateway release is configured (set LEGION_GATEWAY_RELEASE)")
    return {
        "legion_target": KUBERNETES,
        "legion_gateway_release": settings.gateway_release,
        "legion_gateway_namespace": settings.gateway_namespace,
        "legion_model_name": model,
        "legion_route": route_values(settings, registry, model),
    }


def sync_route(settings: Settings, registry: Registry, model: str, folder: Path, log: Log) -> bool:
    """Write `model`'s HTTPRoute after a traffic change on Kubernetes (a no-op without a Gateway release or
    without Kubernetes deployments of the model); True when a playbook ran."""
    if not settings.gateway_release:
        return False
    if not any(d.target == KUBERNETES for d in registry.deployments(model, active_only=False)):
        return False
    from legion_ci.deploy import inventory
    from legion_ci.deploy.ansible import run_playbook

    variables = route_vars(settings, registry, model)
    files = inventory.write(folder, variables, f"route of {model} through {settings.gateway_release}")
    run_playbook("route.yml", files, log, folder=settings.ansible_dir)
    return True
