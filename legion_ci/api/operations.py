"""Deploy a run's candidate, roll it back, undeploy a model: the pipeline's own stages and rollout core,
called under the model's lock (they run Ansible, so they take seconds; the answer waits for them)."""

from __future__ import annotations

from collections import deque
from typing import Any

from legion_ci.api import fields
from legion_ci.api.call import LOCK_WAIT, Call
from legion_ci.api.errors import ApiError, conflict
from legion_ci.api.jsonio import Reply
from legion_ci.core.registry import RunRecord, VersionRecord
from legion_ci.deploy import rollout
from legion_ci.pipeline.graph import Stage, stage
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages import rollback
from legion_ci.pipeline.stages.base import RunOptions

TARGETS = ("local", "kubernetes")
LOG_LINES = 50
DONE = ("passed", "skipped")


class Collector:
    """A Reporter that keeps the last lines a stage logs, for the answer."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=LOG_LINES)

    def begin(self, title: str, stages: tuple[Stage, ...]) -> None: ...
    def started(self, stage: Stage) -> None: ...
    def finished(self, stage: Stage, status: str, summary: str, seconds: float) -> None: ...
    def end(self) -> None: ...

    def log(self, line: str) -> None:
        self.lines.append(line)


def _run_and_candidate(call: Call) -> tuple[RunRecord, VersionRecord]:
    """The path's run and the version its train stage produced; 409 when it has none."""
    run = call.registry.run(call.params["run_id"])
    call.principal.require_model(run.model)
    train = call.registry.stages(run.id).get("train")
    version_id = (train.outputs or {}).get("version_id") if train and train.status == "passed" else None
    if version_id is None:
        raise conflict(
            f"run {run.id!r} has no candidate: its train stage has not passed ({train.status if train else 'not run'})"
        )
    return run, call.registry.version_by_id(int(version_id))


def _needs_done(call: Call, run: RunRecord, st: Stage) -> None:
    records = call.registry.stages(run.id)
    state = {n: records[n].status if n in records else "not run" for n in st.needs}
    if any(s not in DONE for s in state.values()):
        raise conflict(
            f"run {run.id!r}: {st.name} needs {' and '.join(st.needs)} to have passed "
            f"({', '.join(f'{k}: {v}' for k, v in state.items())}); nothing reaches production unchecked"
        )


def deploy_run(call: Call) -> Reply:
    """Body (optional) {"weight": 1-100, "target": "local"|"kubernetes"}; defaults from the run's spec."""
    fields.unknown_keys(call.body, ("weight", "target"))
    weight = fields.percent(call.body["weight"], "weight", low=1) if "weight" in call.body else None
    target = fields.choice(call.body, "target", TARGETS)
    run, candidate = _run_and_candidate(call)
    call.principal.require_model(run.model, [candidate.version])
    _needs_done(call, run, stage("deploy"))
    collector = Collector()
    options = RunOptions(target=target, traffic_weight=weight, lock_wait=LOCK_WAIT)
    _, result = single_stage(call.settings, call.registry, "deploy", None, run.id, run.flow, options, collector)
    audit = {
        "model": run.model,
        "run_id": run.id,
        "version": candidate.version,
        "status": result.status,
        "deployment_id": result.outputs.get("deployment_id"),
        "weight": result.outputs.get("weight"),
    }
    return Reply(200, _stage_answer(run, "deploy", result.status, result.summary, result.outputs, collector), audit)


def rollback_run(call: Call) -> Reply:
    """Take the run's candidate out of service; after a promote, the version it replaced serves again."""
    fields.unknown_keys(call.body, ())
    run, candidate = _run_and_candidate(call)
    production = call.registry.alias(run.model, "production")
    touched = [candidate.version] + ([production.version] if production else [])
    call.principal.require_model(run.model, touched)
    collector = Collector()
    result = rollback.run_recorded(call.settings, call.registry, run, RunOptions(lock_wait=LOCK_WAIT), collector.log)
    audit = {"model": run.model, "run_id": run.id, "version": candidate.version, "status": result.status}
    return Reply(
        200, _stage_answer(run, rollback.NAME, result.status, result.summary, result.outputs, collector), audit
    )


def undeploy(call: Call) -> Reply:
    """Stop a model's deployments, or only those of `?version=`; a rerun finds nothing and changes nothing."""
    name = call.known_model()
    version = call.query.get("version")
    if version is not None and version not in {v.version for v in call.registry.versions(name)}:
        known = ", ".join(sorted({v.version for v in call.registry.versions(name)}))
        raise ApiError(404, f"model {name!r} has no version {version!r} (versions: {known})", "version")
    active = [d for d in call.registry.deployments(name) if version is None or d.detail.get("version") == version]
    call.principal.require_model(name, [str(d.detail.get("version")) for d in active] + ([version] if version else []))
    collector = Collector()
    with call.locked(name):
        retired = rollout.undeploy(
            call.settings,
            call.registry,
            name,
            version,
            call.settings.deployments_dir / name / "undeploy",
            collector.log,
        )
    body = {"model": name, "version": version, "retired": retired, "log": list(collector.lines)}
    return Reply(200, body, {"model": name, "version": version, "retired": retired})


def _stage_answer(
    run: RunRecord, name: str, status: str, summary: str, outputs: dict[str, Any], collector: Collector
) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "model": run.model,
        "stage": name,
        "status": status,
        "summary": summary,
        "outputs": outputs,
        "log": list(collector.lines),
    }
