"""Runs stages of the graph: one alone (as Jenkins does, a process per stage) or a whole flow."""

from __future__ import annotations

import secrets
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from legion_ci.core.errors import LegionError, StageError, StageFailed
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry, RunRecord, now
from legion_ci.core.settings import Settings
from legion_ci.core.spec import load_spec
from legion_ci.pipeline.graph import STAGES, Stage, flow, stage
from legion_ci.pipeline.progress import Reporter
from legion_ci.pipeline.stages.base import RunOptions, StageContext, StageResult


@dataclass
class RunSummary:
    run_id: str
    model: str
    flow: str
    status: str
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
    """The run a stage command works on: the given id (created if new), or a fresh run for a first
    stage, or the model's latest run."""
    if run_id and model_dir is None:
        return registry.run(run_id)
    if model_dir is None:
        raise StageError("run", "give MODEL_DIR, --run-id, or both")
    loaded = load_spec(model_dir)
    name = loaded.spec.name
    if run_id is None and not first_stage:
        latest = registry.runs(name, limit=1)
        if not latest:
            raise StageError("run", f"model {name!r} has no run yet; start with `legion-ci run {model_dir}`")
        return latest[0]
    return registry.ensure_run(run_id or new_run_id(name), name, str(loaded.model_dir), flow_name)


def run_stage(
    settings: Settings, registry: Registry, run: RunRecord, st: Stage, options: RunOptions, reporter: Reporter
) -> StageResult:
    """Run one stage and record its result; StageFailed / LegionError propagate after recording."""
    reporter.started(st)
    started, clock = now(), time.monotonic()
    halted = halted_by(registry, run, st)
    if halted:
        result = StageResult("skipped", f"not needed: {halted}")
        registry.record_stage(run.id, st.name, result.status, result.summary, {}, started, 0.0)
        reporter.finished(st, result.status, result.summary, 0.0)
        return result
    registry.record_stage(run.id, st.name, "running", started_at=started)
    ctx = StageContext(settings, registry, run, st.name, options, reporter.log)
    try:
        with model_lock(registry, run.model, owner=run.id, wait=options.lock_wait):
            result = st.load()(ctx)
    except StageFailed as exc:
        _record_failure(registry, run, st, "failed", exc.message, started, clock, reporter)
        raise
    except LegionError as exc:
        _record_failure(registry, run, st, "error", exc.message, started, clock, reporter)
        raise
    except Exception as exc:  # a bug: keep the traceback in the run folder, show one line
        trace = settings.runs_dir / run.id / f"{st.name}.traceback.txt"
        trace.parent.mkdir(parents=True, exist_ok=True)
        trace.write_text(traceback.format_exc())
        message = f"unexpected {type(exc).__name__}: {exc} (traceback in {trace})"
        _record_failure(registry, run, st, "error", message, started, clock, reporter)
        raise StageError(st.name, message) from exc
    seconds = time.monotonic() - clock
    outputs = {**result.outputs, "halt": result.halt} if result.halt else result.outputs
    if result.halt:
        result.summary = f"{result.summary}; {result.halt}: the rest of the run is skipped"
    registry.record_stage(run.id, st.name, result.status, result.summary, outputs, started, seconds)
    reporter.finished(st, result.status, result.summary, seconds)
    return result


def halted_by(registry: Registry, run: RunRecord, st: Stage) -> str | None:
    """The reason an earlier stage of this run ended the flow, if one did (kept across processes)."""
    records = registry.stages(run.id)
    for earlier in STAGES[: [s.name for s in STAGES].index(st.name)]:
        record = records.get(earlier.name)
        if record and record.status == "passed" and (record.outputs or {}).get("halt"):
            return str(record.outputs["halt"])
    return None


def _record_failure(
    registry: Registry,
    run: RunRecord,
    st: Stage,
    status: str,
    message: str,
    started: str,
    clock: float,
    reporter: Reporter,
) -> None:
    seconds = time.monotonic() - clock
    registry.record_stage(run.id, st.name, status, message, {}, started, seconds)
    registry.set_run_status(run.id, "failed")
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
    summary = RunSummary(run.id, run.model, flow_name, "running")
    clock = time.monotonic()
    reporter.begin(f"{run.model} · {flow_name} · run {run.id}", stages)
    try:
        with model_lock(registry, run.model, owner=run.id, wait=options.lock_wait):
            for st in stages:
                result = run_stage(settings, registry, run, st, options, reporter)
                summary.stages.append({"stage": st.name, "status": result.status, "summary": result.summary})
        summary.status = "passed"
    except LegionError as exc:
        summary.status = "failed" if isinstance(exc, StageFailed) else "error"
        summary.error, summary.exit_code = exc.message, exc.exit_code
    finally:
        reporter.end()
        summary.seconds = time.monotonic() - clock
        records = registry.stages(run.id)
        summary.stages = [
            {
                "stage": s.name,
                "status": records[s.name].status if s.name in records else "pending",
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
    """`legion-ci <stage>`: one stage in its own process, reading earlier stages from the run record."""
    st = stage(name)
    run = open_run(registry, model_dir, run_id, flow_name, first_stage=name in ("validate", "train"))
    return run, run_stage(settings, registry, run, st, options, reporter)
