"""Deploy a run's candidate, roll it back, undeploy a model: each request is checked now, then the pipeline's
own code runs as a background operation (the runner's deploy and rollback stages, the rollout core's
undeploy) under the model's lock. They run Ansible, so they take seconds to minutes."""

from __future__ import annotations

from typing import Any

from legion_ci.api import fields
from legion_ci.api.call import LOCK_WAIT, Call
from legion_ci.api.errors import ApiError, conflict
from legion_ci.api.operations import Change, Done, Log
from legion_ci.core.registry import RunRecord, VersionRecord
from legion_ci.core.status import StageStatus
from legion_ci.deploy import rollout
from legion_ci.pipeline.graph import ROLLBACK, Stage, stage
from legion_ci.pipeline.runner import check_needs, single_stage
from legion_ci.pipeline.stages.base import RunOptions, StageResult

TARGETS = ("local", "kubernetes")


class LogReporter:
    """A Reporter that sends a stage's log lines to its operation."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def begin(self, title: str, stages: tuple[Stage, ...]) -> None: ...
    def started(self, stage: Stage) -> None: ...
    def finished(self, stage: Stage, status: StageStatus, summary: str, seconds: float) -> None: ...
    def end(self) -> None: ...


def _run_and_candidate(call: Call) -> tuple[RunRecord, VersionRecord]:
    """The path's run and the version its train stage produced; 409 when it has none."""
    run = call.registry.run(call.params["run_id"])
    call.principal.require_model(run.model)
    train = call.registry.stages(run.id).get("train")
    version_id = (train.outputs or {}).get("version_id") if train and train.status is StageStatus.PASSED else None
    if version_id is None:
        raise conflict(
            f"run {run.id!r} has no candidate: its train stage has not passed ({train.status if train else 'not run'})"
        )
    return run, call.registry.version_by_id(int(version_id))


def deploy_run(call: Call) -> Change:
    """Body (optional) {"weight": 1-100, "target": "local"|"kubernetes"}; defaults from the run's spec.
    409 at once when the run's gate and perf have not passed (the runner's own needs check)."""
    fields.unknown_keys(call.body, ("weight", "target"))
    weight = fields.percent(call.body["weight"], "weight", low=1) if "weight" in call.body else None
    target = fields.choice(call.body, "target", TARGETS)
    run, candidate = _run_and_candidate(call)
    call.principal.require_model(run.model, [candidate.version])
    check_needs(call.registry, run, stage("deploy"))
    options = RunOptions(target=target, traffic_weight=weight, lock_wait=LOCK_WAIT)
    asked = {"model": run.model, "run_id": run.id, "version": candidate.version, "weight": weight, "target": target}

    def work(log: Log) -> Done:
        _, result = single_stage(
            call.settings, call.registry, "deploy", None, run.id, run.flow, options, LogReporter(log)
        )
        audit = {
            **asked,
            "status": result.status,
            "deployment_id": result.outputs.get("deployment_id"),
            "weight": result.outputs.get("weight"),
        }
        return Done(_stage_answer(run, "deploy", result), audit)

    return Change("deploy", run.model, asked, work)


def rollback_run(call: Call) -> Change:
    """Take the run's candidate out of service; after a promote, the version it replaced serves again."""
    fields.unknown_keys(call.body, ())
    run, candidate = _run_and_candidate(call)
    production = call.registry.alias(run.model, "production")
    touched = [candidate.version] + ([production.version] if production else [])
    call.principal.require_model(run.model, touched)
    options = RunOptions(lock_wait=LOCK_WAIT)
    asked = {"model": run.model, "run_id": run.id, "version": candidate.version}

    def work(log: Log) -> Done:
        _, result = single_stage(
            call.settings, call.registry, ROLLBACK.name, None, run.id, run.flow, options, LogReporter(log)
        )
        return Done(_stage_answer(run, ROLLBACK.name, result), {**asked, "status": result.status})

    return Change("rollback", run.model, asked, work)


def undeploy(call: Call) -> Change:
    """Stop a model's deployments, or only those of `?version=`; a rerun finds nothing and changes nothing."""
    name = call.known_model()
    version = call.query.get("version")
    if version is not None and version not in {v.version for v in call.registry.versions(name)}:
        known = ", ".join(sorted({v.version for v in call.registry.versions(name)}))
        raise ApiError(404, f"model {name!r} has no version {version!r} (versions: {known})", "version")
    active = [d for d in call.registry.deployments(name) if version is None or d.detail.get("version") == version]
    call.principal.require_model(name, [str(d.detail.get("version")) for d in active] + ([version] if version else []))
    asked = {"model": name, "version": version}

    def work(log: Log) -> Done:
        with call.locked(name):
            folder = call.settings.deployments_dir / name / "undeploy"
            retired = rollout.undeploy(call.settings, call.registry, name, version, folder, log)
        return Done({"model": name, "version": version, "retired": retired}, {**asked, "retired": retired})

    return Change("undeploy", name, asked, work)


def _stage_answer(run: RunRecord, name: str, result: StageResult) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "model": run.model,
        "stage": name,
        "status": result.status,
        "summary": result.summary,
        "outputs": result.outputs,
    }
