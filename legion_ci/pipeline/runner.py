"""Runs stages of the graph: one alone (as Jenkins does, a process per stage) or a whole flow."""

from __future__ import annotations

import dataclasses
import secrets
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from legion_ci.core.errors import (
    LegionError,
    NeedsUnmet,
    NotFoundError,
    RegistryError,
    StageError,
    StageFailed,
)
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry, RunRecord, now
from legion_ci.core.settings import Settings
from legion_ci.core.spec import load_spec
from legion_ci.core.status import RunStatus, StageStatus
from legion_ci.pipeline import reuse
from legion_ci.pipeline.graph import STAGES, Stage, flow, stage, starts_a_run
from legion_ci.pipeline.progress import Reporter
from legion_ci.pipeline.stages.base import RunOptions, StageContext, StageResult

GRAPH_ORDER = [s.name for s in STAGES]


@dataclass
class RunSummary:
    run_id: str
    model: str
    flow: str
    status: RunStatus
    stages: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "flow": self.flow,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "stages": self.stages,
        }


def new_run_id(model: str) -> str:
    return f"{model}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def open_run(
    registry: Registry, model_dir: str | Path | None, run_id: str | None, flow_name: str, first_stage: bool
) -> RunRecord:
    """The run a stage command works on: the given id, or a fresh run for a first stage, or the model's
    latest run. Only a first stage creates a run: any other stage given an unknown id refuses, so a
    mistyped --run-id leaves no phantom run behind for "the latest run" to pick up later."""
    if run_id and model_dir is None:
        return registry.run(run_id)
    if model_dir is None:
        raise StageError("run", "give MODEL_DIR, --run-id, or both")
    loaded = load_spec(model_dir)
    name = loaded.spec.name
    if first_stage:
        run = registry.ensure_run(run_id or new_run_id(name), name, str(loaded.model_dir), flow_name)
    elif run_id is None:
        latest = registry.runs(name, limit=1)
        if not latest:
            raise StageError("run", f"model {name!r} has no run yet; start with `legion-ci run {model_dir}`")
        run = latest[0]
    else:
        run = registry.run(run_id)
        if run.model != name:
            raise RegistryError(f"run {run_id!r} belongs to model {run.model!r}, not {name!r}; use another --run-id")
    # this agent's checkout: the folder recorded by the stage that started the run may be on a pod that is gone
    return dataclasses.replace(run, model_dir=str(loaded.model_dir))


def _open_for(
    registry: Registry, st: Stage, model_dir: str | Path | None, run_id: str | None, flow_name: str
) -> RunRecord:
    """open_run for `st`; an unknown --run-id for a stage that needs earlier ones says how to start it."""
    try:
        return open_run(registry, model_dir, run_id, flow_name, first_stage=starts_a_run(st))
    except NotFoundError:
        if not st.needs:  # `train --run-id ID` without MODEL_DIR: nothing to start the run from
            raise
        first = st.needs[0]
        where = f"{model_dir} " if model_dir is not None else "MODEL_DIR "
        raise NeedsUnmet(
            st.name,
            f"no run {run_id!r}, and {st.name} needs stage {first!r} of its run to have passed; nothing was "
            f"recorded. Start the run with `legion-ci {first} {where}--run-id {run_id}` (or `legion-ci run "
            f"{where.strip()}`), or list runs with `legion-ci runs`",
        ) from None


def unmet_needs(registry: Registry, run: RunRecord, st: Stage) -> dict[str, str]:
    """The stages `st` needs that have not passed (or been skipped) in `run`, with their state."""
    records = registry.stages(run.id)
    return {
        need: str(records[need].status) if need in records else "not run"
        for need in st.needs
        if need not in records or not records[need].status.satisfied
    }


def check_needs(registry: Registry, run: RunRecord, st: Stage) -> None:
    """Refuse (NeedsUnmet, nothing written) unless every stage `st` needs passed in this run."""
    unmet = unmet_needs(registry, run, st)
    if not unmet:
        return
    states = " and ".join(f"stage {need!r} ({state})" for need, state in unmet.items())
    first = next(iter(unmet))
    raise NeedsUnmet(
        st.name,
        f"needs {states} of run {run.id!r} to have passed; nothing was recorded. "
        f"Run `legion-ci {first} {run.model_dir} --run-id {run.id}` first",
    )


def run_stage(
    settings: Settings, registry: Registry, run: RunRecord, st: Stage, options: RunOptions, reporter: Reporter
) -> StageResult:
    """Run one stage under the model's lock and record its result. A stage of the graph after one that
    halted the flow is recorded as skipped; a stage whose needs have not passed in this run is refused
    before anything is written. StageFailed / LegionError propagate after recording."""
    in_graph = st.name in GRAPH_ORDER
    halted = halted_by(registry, run, st) if in_graph else None
    if halted is None:
        check_needs(registry, run, st)
    reporter.started(st)
    started, clock = now(), time.monotonic()
    if halted:
        result = StageResult(StageStatus.SKIPPED, f"not needed: {halted}")
        registry.record_stage(run.id, st.name, result.status, result.summary, {}, started, 0.0)
        reporter.finished(st, result.status, result.summary, 0.0)
        return result
    registry.record_stage(run.id, st.name, StageStatus.RUNNING, started_at=started)
    ctx = StageContext(settings, registry, run, st.name, options, reporter.log)
    failure = partial(_record_failure, registry, run, st, started, clock, reporter, mark_run=in_graph)
    try:
        with model_lock(registry, run.model, owner=run.id, wait=options.lock_wait):
            result = _run_or_reuse(ctx, st)
    except StageFailed as exc:
        failure(StageStatus.FAILED, exc.message)
        raise
    except LegionError as exc:
        failure(StageStatus.ERROR, exc.message)
        raise
    except Exception as exc:  # a bug: keep the traceback in the run folder, show one line
        trace = settings.runs_dir / run.id / f"{st.name}.traceback.txt"
        trace.parent.mkdir(parents=True, exist_ok=True)
        trace.write_text(traceback.format_exc())
        message = f"unexpected {type(exc).__name__}: {exc} (traceback in {trace})"
        failure(StageStatus.ERROR, message)
        raise StageError(st.name, message) from exc
    seconds = time.monotonic() - clock
    outputs = {**result.outputs, "halt": result.halt} if result.halt else result.outputs
    if result.halt and result.status is StageStatus.PASSED:
        # One word for a flow ended on purpose, wherever it shows: the stage, the run, the console, `runs`.
        result.status = StageStatus.HALTED
        if result.halt not in result.summary:
            result.summary = f"{result.summary}; {result.halt}"
        result.summary = f"{result.summary}: the rest of the run is skipped"
    registry.record_stage(run.id, st.name, result.status, result.summary, outputs, started, seconds)
    if result.status is StageStatus.HALTED and in_graph:
        registry.set_run_status(run.id, RunStatus.HALTED)
    reporter.finished(st, result.status, result.summary, seconds)
    return result


def _run_or_reuse(ctx: StageContext, st: Stage) -> StageResult:
    """The stage's result: taken from an earlier run when its inputs are unchanged since it passed there
    (legion_ci.pipeline.reuse), else computed, and then recorded with its inputs' key for later runs."""
    key = reuse.inputs_key(ctx)
    earlier = reuse.find(ctx, key) if key else None
    if earlier is not None:
        return reuse.reuse(ctx, earlier)
    result = st.load()(ctx)
    if key and result.status is StageStatus.PASSED and not result.halt:
        result.outputs = {**result.outputs, reuse.KEY: key}
    return result


def halted_by(registry: Registry, run: RunRecord, st: Stage) -> str | None:
    """The reason an earlier stage of this run ended the flow, if one did (kept across processes)."""
    records = registry.stages(run.id)
    for earlier in STAGES[: GRAPH_ORDER.index(st.name)]:
        record = records.get(earlier.name)
        if record and record.status.satisfied and (record.outputs or {}).get("halt"):
            return str(record.outputs["halt"])
    return None


def _record_failure(
    registry: Registry,
    run: RunRecord,
    st: Stage,
    started: str,
    clock: float,
    reporter: Reporter,
    status: StageStatus,
    message: str,
    mark_run: bool,
) -> None:
    """Record a stage that did not pass; a stage of the graph also marks its run failed (a rollback run on
    demand leaves the run's status as it was)."""
    seconds = time.monotonic() - clock
    registry.record_stage(run.id, st.name, status, message, {}, started, seconds)
    if mark_run:
        registry.set_run_status(run.id, RunStatus.FAILED)
    reporter.finished(st, status, message, seconds)


def run_flow(
    settings: Settings,
    registry: Registry,
    model_dir: str | Path,
    flow_name: str,
    options: RunOptions,
    reporter: Reporter,
    run_id: str | None = None,
) -> RunSummary:
    """Every stage of a flow in order; stops at the first that does not pass (see summary.exit_code)."""
    run = open_run(registry, model_dir, run_id, flow_name, first_stage=True)
    stages = flow(flow_name)
    summary = RunSummary(run.id, run.model, flow_name, RunStatus.RUNNING)
    clock = time.monotonic()
    reporter.begin(f"{run.model} · {flow_name} · run {run.id}", stages)
    try:
        with model_lock(registry, run.model, owner=run.id, wait=options.lock_wait):
            for st in stages:
                result = run_stage(settings, registry, run, st, options, reporter)
                summary.stages.append({"stage": st.name, "status": result.status, "summary": result.summary})
        halted = any(r.status is StageStatus.HALTED for r in registry.stages(run.id).values())
        summary.status = RunStatus.HALTED if halted else RunStatus.PASSED
    except LegionError as exc:
        summary.status = RunStatus.FAILED if isinstance(exc, StageFailed) else RunStatus.ERROR
        summary.error, summary.exit_code = exc.message, exc.exit_code
    finally:
        reporter.end()
        summary.seconds = time.monotonic() - clock
        records = registry.stages(run.id)
        summary.stages = [
            {
                "stage": s.name,
                "status": records[s.name].status if s.name in records else StageStatus.PENDING,
                "summary": records[s.name].summary if s.name in records else "",
                "seconds": records[s.name].seconds if s.name in records else None,
            }
            for s in stages
        ]
        registry.set_run_status(run.id, summary.status)
    return summary


def single_stage(
    settings: Settings,
    registry: Registry,
    name: str,
    model_dir: str | None,
    run_id: str | None,
    flow_name: str,
    options: RunOptions,
    reporter: Reporter,
) -> tuple[RunRecord, StageResult]:
    """`legion-ci <stage>` (and `legion-ci rollback`): one stage in its own process, reading earlier stages
    from the run record. A stage whose needs did not pass in the run, or given a run id that does not exist
    when it cannot start a run, refuses with NeedsUnmet and writes nothing."""
    st = stage(name)
    run = _open_for(registry, st, model_dir, run_id, flow_name)
    return run, run_stage(settings, registry, run, st, options, reporter)
