"""What `legion-ci runs` and `legion-ci runs show` print: runs from the registry, their stages in the
graph's order, and the files each stage kept in the store (its reports, found after the workspace is gone)."""

from __future__ import annotations

from typing import Any

from legion_ci.core.registry import Registry, RunRecord, StageRecord
from legion_ci.core.settings import Settings
from legion_ci.core.store import RunOutputs, Store
from legion_ci.pipeline.graph import ON_DEMAND, STAGES, graph_order


def _ordered(records: dict[str, StageRecord]) -> list[StageRecord]:
    return [records[name] for name in graph_order(records)]


def run_rows(registry: Registry, model: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest runs (of one model, or all), each with its stages' statuses in the graph's order."""
    rows: list[dict[str, Any]] = []
    for run in registry.runs(model, limit):
        records = _ordered(registry.stages(run.id))
        rows.append(
            {
                "run_id": run.id,
                "model": run.model,
                "flow": run.flow,
                "status": str(run.status),
                "created_at": run.created_at,
                "updated_at": run.updated_at,
                "stages": {r.stage: str(r.status) for r in records},
            }
        )
    return rows


def run_detail(settings: Settings, registry: Registry, run_id: str) -> dict[str, Any]:
    """One run: its stages in the graph's order (status, duration, attempts, summary) and, for each, the
    URIs of the files it kept in the store (reports first), read from the store itself."""
    run: RunRecord = registry.run(run_id)
    outputs = RunOutputs(Store.from_settings(settings))
    kept_names = {s.name: [k.split("/", 1)[1] for k in s.kept] for s in STAGES + ON_DEMAND}
    stored: dict[str, dict[str, str]] = {}
    for file in outputs.list(run.id):
        stored.setdefault(file.stage, {})[file.name] = file.uri
    stages = []
    for record in _ordered(registry.stages(run.id)):
        in_store = stored.get(record.stage, {})
        names = kept_names.get(record.stage, [])
        stages.append(
            {
                "stage": record.stage,
                "status": str(record.status),
                "seconds": record.seconds,
                "attempts": record.attempts,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "summary": record.summary or "",
                "files": {name: in_store[name] for name in names if name in in_store},
            }
        )
    return {
        "run_id": run.id,
        "model": run.model,
        "flow": run.flow,
        "status": str(run.status),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "store": outputs.uri(run.id),
        "stages": stages,
    }
