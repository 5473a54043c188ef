"""The JSON shapes of registry records: what the API shows of models, versions, deployments and runs."""

from __future__ import annotations

from typing import Any

from legion_ci.core.manifest import Manifest
from legion_ci.core.registry import DeploymentRecord, Registry, RunRecord, StageRecord, VersionRecord
from legion_ci.pipeline.graph import STAGES

STAGE_ORDER = {s.name: i for i, s in enumerate(STAGES)}


def lineage(manifest: Manifest) -> dict[str, Any]:
    """Where a version came from, in brief: commit, data, run, Jenkins build."""
    return {
        "git_commit": manifest.git.commit,
        "git_branch": manifest.git.branch,
        "git_dirty": manifest.git.dirty,
        "data_fingerprint": manifest.data.fingerprint,
        "source_fingerprint": manifest.source_fingerprint,
        "run_id": manifest.run_id,
        "jenkins_build_url": manifest.jenkins.build_url if manifest.jenkins else None,
        "trained_at": manifest.created_at,
    }


def version(v: VersionRecord, aliases: list[str]) -> dict[str, Any]:
    return {
        "id": v.id,
        "version": v.version,
        "artifact_id": v.artifact_id,
        "created_at": v.created_at,
        "aliases": sorted(aliases),
        "metrics": dict(v.manifest.metrics),
        "lineage": lineage(v.manifest),
        "image": v.image,
        "image_digest": v.image_digest,
    }


def version_full(v: VersionRecord, aliases: list[str], deployments: list[DeploymentRecord]) -> dict[str, Any]:
    return {
        **version(v, aliases),
        "path": v.path,
        "manifest": v.manifest.to_json(),
        "deployments": [deployment(d) for d in deployments if d.version_id == v.id],
    }


def deployment(d: DeploymentRecord) -> dict[str, Any]:
    endpoints = [{"url": e.get("url")} for e in d.endpoints or [] if isinstance(e, dict)]
    return {
        "id": d.id,
        "version_id": d.version_id,
        "version": d.detail.get("version"),
        "target": d.target,
        "status": d.status,
        "weight": d.weight,
        "replicas": len(endpoints),
        "endpoints": endpoints,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def aliases_by_version(registry: Registry, model: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias, version_id in registry.aliases_of(model).items():
        out.setdefault(version_id, []).append(alias)
    return out


def stage(s: StageRecord) -> dict[str, Any]:
    return {
        "stage": s.stage,
        "status": s.status,
        "summary": s.summary,
        "outputs": s.outputs or {},
        "attempts": s.attempts,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "seconds": s.seconds,
    }


def ordered(stages: dict[str, StageRecord]) -> list[StageRecord]:
    """Stages in the graph's order; others (rollback) after them."""
    return sorted(stages.values(), key=lambda s: (STAGE_ORDER.get(s.stage, len(STAGE_ORDER)), s.started_at or ""))


def run(r: RunRecord, stages: dict[str, StageRecord], full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "model": r.model,
        "flow": r.flow,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }
    if full:
        out["model_dir"] = r.model_dir
        out["stages"] = [stage(s) for s in ordered(stages)]
    else:
        out["stages"] = {s.stage: s.status for s in ordered(stages)}
    return out
