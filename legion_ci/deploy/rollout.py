"""Rollout: deploy a version beside production, promote it, roll it back or undeploy. The local target's
processes are started and stopped here (legion_ci.deploy.local); Kubernetes releases go through the
Ansible playbooks. Every traffic change goes through the registry weights the router follows. No step
fails a request: weights move first, processes stop after draining."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from legion_ci.core.errors import DeployError, NotFoundError
from legion_ci.core.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.core.settings import Settings
from legion_ci.core.spec import ModelSpec
from legion_ci.core.status import DeploymentStatus
from legion_ci.deploy import local, local_router, traffic
from legion_ci.deploy.weights import rebalance

Log = Callable[[str], None]


@dataclass(frozen=True)
class Deployed:
    deployment: DeploymentRecord
    started: bool
    router_url: str | None

    @property
    def urls(self) -> list[str]:
        return [str(e["url"]) for e in self.deployment.endpoints or []]


def stable_url(router_url: str | None, model: str) -> str | None:
    """The URL callers use whatever version serves: the router's, without a version in the path."""
    return f"{router_url}/api/model/{model}/invoke" if router_url else None


def release_name(model: str, version: str) -> str:
    """The Helm release of a version, as the model_kubernetes role names it."""
    return re.sub(r"[^a-z0-9-]", "-", f"legion-{model}-{version}".lower())


def deploy(
    settings: Settings,
    registry: Registry,
    version: VersionRecord,
    spec: ModelSpec,
    weight: int,
    target: str,
    folder: Path,
    log: Log,
) -> Deployed:
    """Run deploy.yml for `version` at `weight` percent (all of it when nothing else serves). A version
    already serving is left as it is (the playbook finds it and starts nothing)."""
    router = None
    if target == local.TARGET:
        router, started_router = local_router.ensure(settings)
        log(f"router {'started' if started_router else 'running'} on {router.url}")
    already = local.find_serving(registry, version.id, target)
    stale = [
        d
        for d in registry.deployments(version.model)
        if d.version_id == version.id and d.target == local.TARGET == target and (already is None or d.id != already.id)
    ]
    if stale:  # some replica of it died: replace the whole deployment rather than route around the gap
        log(f"deployment(s) {[d.id for d in stale]} of {version.label} lost a replica; retiring them first")
        retire(settings, registry, stale, DeploymentStatus.STOPPED, folder / "stale", log)
    if target == local.TARGET:
        record = already or _deploy_local(settings, registry, version, spec, weight, log)
        if already is None:
            record = _shadow(registry, record, spec, log)
        if router is not None:
            current = next((d.weight for d in registry.deployments(version.model) if d.id == record.id), record.weight)
            local_router.wait_routed(router, record.id, int(current))
        return Deployed(record, already is None, router.url if router else None)
    from legion_ci.deploy import inventory  # Ansible's part: the Kubernetes target only
    from legion_ci.deploy.ansible import run_playbook

    variables = inventory.deploy_vars(settings, spec, version, weight, target)
    files = inventory.write(folder, variables, f"deploy {version.label} to {target}")
    run_playbook("deploy.yml", files, log, folder=settings.ansible_dir)
    if already is None:
        _record_kubernetes(registry, version, spec, weight)
        recorded = local.find_serving(registry, version.id, target)
        if recorded is not None:
            _shadow(registry, recorded, spec, log)
    traffic.sync_route(settings, registry, version.model, folder / "route", log)  # with a Gateway: its HTTPRoute
    found = local.find_serving(registry, version.id, target)
    if found is None:
        raise DeployError(
            f"deploy.yml finished but no serving deployment of {version.label} is recorded (see {files.vars.parent})"
        )
    return Deployed(found, already is None, None)


def _shadow(registry: Registry, record: DeploymentRecord, spec: ModelSpec, log: Log) -> DeploymentRecord:
    """A candidate of a shadow rollout, deployed at weight 0 beside production, gets its mirror share: that
    share of production's requests is copied to it after each answer (the router's copies; on Kubernetes the
    HTTPRoute's RequestMirror)."""
    rollout = spec.rollout
    current = registry.deployment(record.id)
    if rollout.strategy != "shadow" or current.weight != 0:
        return current
    percent = max(1, round(rollout.shadow_share * 100))
    log(f"shadow: {percent}% of {record.model}'s requests copied to deployment {record.id} after each answer")
    return traffic.set_mirror(registry, record.id, percent)


def _deploy_local(
    settings: Settings, registry: Registry, version: VersionRecord, spec: ModelSpec, weight: int, log: Log
) -> DeploymentRecord:
    flags = local.ServerFlags.from_spec(spec)  # every serving setting of legion.yaml reaches every replica
    log(f"starting {spec.deploy.replicas} replica(s) of {version.label} on this host")
    return local.deploy(settings, registry, version, spec.deploy.replicas, flags, weight, log)


def _record_kubernetes(registry: Registry, version: VersionRecord, spec: ModelSpec, weight: int) -> None:
    release = release_name(version.model, version.version)
    url = f"http://{release}.{spec.deploy.namespace}.svc.cluster.local"
    record = local.record(registry, version, [{"url": url, "release": release}], weight, target="kubernetes")
    registry.update_deployment(
        record.id, detail={**record.detail, "release": release, "namespace": spec.deploy.namespace}
    )


def retire(
    settings: Settings,
    registry: Registry,
    deployments: list[DeploymentRecord],
    status: DeploymentStatus,
    folder: Path,
    log: Log,
    drain_timeout: float = 30.0,
) -> list[int]:
    """Take deployments out of service (status rolled-back or stopped); returns the ids retired. Local ones
    drain through the router first, then stop; Kubernetes releases are uninstalled through undeploy.yml."""
    active = [d for d in deployments if d.status.active]
    if not active:
        return []
    local_ones = [d for d in active if d.target == local.TARGET]
    if local_ones:
        log(f"retiring deployment(s) {[d.id for d in local_ones]} ({status}): weight 0, drain, stop")
        local.retire(settings, registry, local_ones, status, drain_timeout)
    for d in active:
        if d.target == local.TARGET:
            continue
        from legion_ci.deploy import inventory  # Ansible's part: the Kubernetes target only
        from legion_ci.deploy.ansible import run_playbook

        # Each version is its own Helm release: taking a version out means uninstalling its release.
        registry.set_weights(_without(registry, d))
        if d.detail.get("mirror"):
            traffic.set_mirror(registry, d.id, 0)
        traffic.sync_route(settings, registry, d.model, folder / "route", log)  # no traffic to it before it goes
        variables = inventory.retire_vars(
            settings,
            d.target,
            d.model,
            str(d.detail.get("version")),
            namespace=str(d.detail.get("namespace", "legion")),
        )
        run_playbook(
            "undeploy.yml",
            inventory.write(folder, variables, f"{status} {d.model} deployment {d.id}"),
            log,
            folder=settings.ansible_dir,
        )
        registry.update_deployment(d.id, status=status, weight=0)
    still = [d.id for d in active if registry.deployment(d.id).status.active]
    if still:
        raise DeployError(f"retiring finished but deployments {still} are still active")
    return [d.id for d in active]


def _without(registry: Registry, gone: DeploymentRecord) -> dict[int, int]:
    current = {d.id: d.weight for d in registry.deployments(gone.model)}
    return rebalance(current, {gone.id: 0})


def promote(
    settings: Settings, registry: Registry, candidate: VersionRecord, folder: Path, log: Log
) -> tuple[int | None, list[int], bool]:
    """Move all traffic to the candidate in one registry transaction, make it production, then retire every
    other deployment of the model (drained, stopped). Returns (previous production id, retired, changed)."""
    deployment = local.find_serving(registry, candidate.id, _target_of(registry, candidate))
    if deployment is None:
        raise DeployError(
            f"{candidate.label} is not serving (no active deployment with every replica ready); "
            "run the deploy stage again before promoting it"
        )
    others = [d for d in registry.deployments(candidate.model) if d.id != deployment.id]
    changed = deployment.weight != 100 or any(d.weight for d in others)
    if changed:
        registry.set_weights({deployment.id: 100, **{d.id: 0 for d in others}})
        log(f"traffic: {candidate.label} 100%, {len(others)} other deployment(s) 0%")
        traffic.sync_route(settings, registry, candidate.model, folder / "route", log)
    previous = registry.set_alias(candidate.model, "production", candidate.id)
    alias_moved = previous != candidate.id
    if alias_moved and previous is not None:  # remembered where a rollback finds it, whatever reruns follow
        registry.update_deployment(deployment.id, detail={**deployment.detail, "replaces_version_id": previous})
    else:
        previous = deployment.detail.get("replaces_version_id")
    retired = retire(settings, registry, others, DeploymentStatus.STOPPED, folder, log)
    return previous, retired, changed or bool(retired) or alias_moved


def reweight(
    settings: Settings, registry: Registry, deployment: DeploymentRecord, weight: int, folder: Path, log: Log
) -> dict[int, int]:
    """A canary step: give `deployment` `weight` percent of its model's traffic, the others sharing the rest,
    in one registry transaction (the local router follows the registry; on Kubernetes with a Gateway, the
    model's HTTPRoute is written again with the new split)."""
    if not deployment.status.active:
        raise DeployError(f"deployment {deployment.id} is {deployment.status}; only an active one takes traffic")
    new = local.set_weight(registry, deployment.id, weight)
    if weight > 0 and registry.deployment(deployment.id).detail.get("mirror"):
        traffic.set_mirror(registry, deployment.id, 0)  # out of its shadow period: it answers callers now
    log(f"traffic: deployment {deployment.id} ({deployment.detail.get('version')}) {weight}%, the others {new}")
    traffic.sync_route(settings, registry, deployment.model, folder / "route", log)
    return new


def _target_of(registry: Registry, version: VersionRecord) -> str:
    for d in registry.deployments(version.model):
        if d.version_id == version.id:
            return d.target
    return local.TARGET


def rollback(
    settings: Settings,
    registry: Registry,
    candidate: VersionRecord,
    spec: ModelSpec,
    previous_id: int | None,
    folder: Path,
    log: Log,
) -> str:
    """Take the candidate out of service. When it was promoted already, the version it replaced
    (`previous_id`) is deployed again at 100% and made production first. Returns what was done."""
    production = registry.alias(candidate.model, "production")
    mine = [d for d in registry.deployments(candidate.model) if d.version_id == candidate.id]
    previous_id = previous_id or next(
        (d.detail.get("replaces_version_id") for d in mine if d.detail.get("replaces_version_id")), None
    )
    restored = ""
    if production is not None and production.id == candidate.id and mine:
        if not previous_id or previous_id == candidate.id:
            raise DeployError(
                f"{candidate.label} is production and no earlier version is recorded to go back to; "
                f"deploy and promote another version, or stop it with `legion-ci undeploy "
                f"{candidate.model} --version {candidate.version}`"
            )
        before = registry.version_by_id(int(previous_id))
        target = _target_of(registry, candidate)
        deploy(settings, registry, before, spec, 100, target, folder / "restore", log)
        registry.set_alias(candidate.model, "production", before.id)
        restored = f"; production is {before.label} again"
    retired = retire(settings, registry, mine, DeploymentStatus.ROLLED_BACK, folder, log)
    if not retired and not restored:
        return f"nothing to roll back: {candidate.label} has no active deployment"
    serving = [f"{d.detail.get('version')} ({d.weight}%)" for d in registry.deployments(candidate.model)]
    return (
        f"rolled back {candidate.label} ({len(retired)} deployment(s)){restored}; serving now: "
        f"{', '.join(serving) or 'nothing'}"
    )


def undeploy(
    settings: Settings, registry: Registry, model: str, version: str | None, folder: Path, log: Log
) -> list[int]:
    """Stop a model's deployments (or one version's); a rerun finds nothing left and changes nothing.
    When no local deployment of any model is left, the router of this home stops too (the next deploy
    starts it again on the same port)."""
    known = registry.model_names()
    if model not in known:
        raise NotFoundError(f"no model {model!r} in the registry (models: {', '.join(known) or 'none'})")
    retired = retire(settings, registry, local.select(registry, model, version), DeploymentStatus.STOPPED, folder, log)
    if not any(d.target == local.TARGET for d in registry.deployments()):
        stopped = local_router.stop(settings)
        if stopped:
            log(f"router on {stopped.url} stopped: nothing left to route")
    return retired
