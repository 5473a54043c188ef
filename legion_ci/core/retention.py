"""Retention (`legion-ci gc`): remove the artifacts and run outputs nothing needs, from the store and the
registry together.

A model's version is kept when an alias names it (production, staging, ...), an active deployment serves
it, it is among the model's newest N versions, or it is the candidate of a run still running (a pipeline
between two stages). Every other version goes: its registry row (with the retired deployments that name
it), its objects in the store, and this machine's cached copy. A run goes with the version it trained; a
run that trained nothing (it stopped before) is kept while it is among the model's newest N runs. A run
goes as its registry rows and its outputs in the store (`<store>/runs/<run_id>/`).

Each model is handled under its lock (no stage of it runs meanwhile), and the registry row goes first,
in a transaction that checks again that no alias or live deployment names the version: a crash between
the two leaves an unreferenced object in the store, never a registry row naming a missing artifact.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legion_ci.core.errors import ConfigError, LegionError, LockedError
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry, RunRecord, VersionRecord
from legion_ci.core.settings import Settings
from legion_ci.core.status import RunStatus
from legion_ci.core.store import ARTIFACTS, CACHE, RUNS, RunOutputs, Store, count_tree, remove_tree

DEFAULT_KEEP = 5
Log = Callable[[str], None]


@dataclass(frozen=True)
class Removal:
    """One thing gc removes: an artifact (a version) or a run, and where its objects are."""

    kind: str  # "artifact" or "run"
    model: str
    name: str  # the version's label, or the run id
    uri: str
    reason: str
    objects: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "name": self.name,
            "uri": self.uri,
            "reason": self.reason,
            "objects": self.objects,
        }


@dataclass
class ModelPlan:
    """What gc keeps (with why) and removes of one model."""

    model: str
    kept: dict[int, list[str]] = field(default_factory=dict)  # version id -> reasons
    versions: list[VersionRecord] = field(default_factory=list)  # to remove
    runs: list[RunRecord] = field(default_factory=list)  # to remove
    run_reasons: dict[str, str] = field(default_factory=dict)
    run_candidates: dict[str, int] = field(default_factory=dict)  # run id -> the version it trained (if removed)


@dataclass
class Outcome:
    """What a gc did (or, on a dry run, would do)."""

    keep: int
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "dry_run": self.dry_run,
            "removed": [r.as_dict() for r in self.removed],
            "kept": self.kept,
            "problems": self.problems,
        }


def _candidate(registry: Registry, run_id: str) -> int | None:
    record = registry.stages(run_id).get("train")
    value = (record.outputs or {}).get("version_id") if record else None
    return int(value) if value is not None else None


def plan_model(registry: Registry, model: str, keep: int) -> ModelPlan:
    """Decide, from the registry alone, what of `model` stays and what goes (nothing is changed)."""
    plan = ModelPlan(model)
    versions = registry.versions(model)  # oldest first
    runs = registry.runs(model, limit=None)  # newest first
    candidates = {r.id: _candidate(registry, r.id) for r in runs}

    def reason(version_id: int, why: str) -> None:
        plan.kept.setdefault(version_id, []).append(why)

    for alias, version_id in sorted(registry.aliases_of(model).items()):
        reason(version_id, alias)
    for d in registry.deployments(model):  # active ones
        reason(d.version_id, f"deployed (deployment {d.id}, {d.status}, {d.weight}%)")
    for v in versions[::-1][:keep]:
        reason(v.id, f"among the newest {keep}")
    for run in runs:
        candidate = candidates[run.id]
        if run.status is RunStatus.RUNNING and candidate is not None:
            reason(candidate, f"candidate of run {run.id}, still running")
    plan.versions = [v for v in versions if v.id not in plan.kept]
    gone = {v.id: v.label for v in plan.versions}
    recent = {r.id for r in runs[:keep]}
    for run in runs:
        candidate = candidates[run.id]
        if candidate is not None and candidate in gone:
            plan.runs.append(run)
            plan.run_reasons[run.id] = f"its candidate {gone[candidate]} is removed"
            plan.run_candidates[run.id] = candidate
        elif candidate is None and run.status is not RunStatus.RUNNING and run.id not in recent:
            plan.runs.append(run)
            plan.run_reasons[run.id] = f"trained nothing ({run.status}) and is not among the newest {keep} runs"
    return plan


def _artifact_uri_is_its_own(version: VersionRecord) -> bool:
    """A registry row's path ends in <model>/<artifact_id> (the store's layout, and the local layout before
    it): only then is the folder it names deleted, never a path a hand-edited row points elsewhere."""
    return version.path.rstrip("/").endswith(f"/{version.model}/{version.artifact_id}")


def collect(settings: Settings, registry: Registry, keep: int, dry_run: bool, log: Log, wait: float = 0.0) -> Outcome:
    """Remove (or, on a dry run, list) every model's artifacts and runs that nothing needs; `log` gets one
    line per removal as it happens."""
    if keep < 0:
        raise ConfigError(f"--keep {keep}: expected the number of newest versions to keep per model (0 or more)")
    store = Store.from_settings(settings)
    outputs = RunOutputs(store)
    outcome = Outcome(keep, dry_run)
    verb = "would remove" if dry_run else "removed"
    owner = f"gc:{socket.gethostname()}:{os.getpid()}"
    for model in sorted(set(registry.model_names()) | set(registry.run_model_names())):
        try:
            if dry_run:
                _model(settings, registry, outputs, model, keep, dry_run, verb, outcome, log)
            else:
                with model_lock(registry, model, owner=owner, wait=wait):
                    _model(settings, registry, outputs, model, keep, dry_run, verb, outcome, log)
        except LockedError as exc:
            outcome.problems.append(f"{model}: skipped, {exc.message}")
            log(f"skipped {model}: {exc.message}")
    return outcome


def _model(
    settings: Settings,
    registry: Registry,
    outputs: RunOutputs,
    model: str,
    keep: int,
    dry_run: bool,
    verb: str,
    outcome: Outcome,
    log: Log,
) -> None:
    plan = plan_model(registry, model, keep)
    labels = {v.id: v.label for v in registry.versions(model)}
    for version_id, reasons in sorted(plan.kept.items()):
        label = labels.get(version_id, f"{model} version {version_id}")
        outcome.kept.append({"model": model, "version_id": version_id, "label": label, "reasons": reasons})
    kept_back: dict[int, str] = {}  # versions the registry refused to remove: their runs stay too
    for v in plan.versions:
        own = _artifact_uri_is_its_own(v)
        try:
            if dry_run:
                objects = count_tree(v.path) if own else 0
            else:
                registry.remove_version(v.id)  # refuses if an alias or a live deployment took it meanwhile
                objects = remove_tree(v.path) if own else 0
                shutil.rmtree(settings.home / CACHE / ARTIFACTS / v.model / v.artifact_id, ignore_errors=True)
        except LegionError as exc:
            outcome.problems.append(f"{v.label}: {exc.message}")
            log(f"kept {v.label}: {exc.message}")
            kept_back[v.id] = v.label
            continue
        why = f"no alias, no live deployment, not among the newest {keep}"
        outcome.removed.append(Removal("artifact", model, v.label, v.path, why, objects))
        left = "" if own else f"; its path does not end in {v.model}/{v.artifact_id}, so the files were left"
        log(f"{verb} artifact {v.label}: {v.path} ({objects} object(s)){left}")
    for run in plan.runs:
        trained = plan.run_candidates.get(run.id)
        if trained is not None and trained in kept_back:
            log(f"kept run {run.id}: its candidate {kept_back[trained]} was kept")
            continue
        uri = run.id
        try:
            uri = outputs.uri(run.id)
            if dry_run:
                objects = count_tree(uri)
            else:
                registry.remove_run(run.id)
                objects = remove_tree(uri)
                shutil.rmtree(settings.home / CACHE / RUNS / run.id, ignore_errors=True)
        except LegionError as exc:
            outcome.problems.append(f"run {run.id}: {exc.message}")
            log(f"kept run {run.id}: {exc.message}")
            continue
        outcome.removed.append(Removal("run", model, run.id, uri, plan.run_reasons[run.id], objects))
        log(f"{verb} run {run.id}: {uri} ({objects} object(s)); {plan.run_reasons[run.id]}")
