"""Stage reuse: a check whose inputs are unchanged since it passed in an earlier run is not done again.

The gate and the performance test are pure functions of their inputs. The gate's: the candidate artifact,
the spec's `gate:` section, the model's tests, the production version it is compared with, the flow (a
retrain must improve) and the extra data. The perf test's: the artifact, `perf:`, `deploy.auth`,
`serving:` and the model's own locustfile. Those inputs are hashed into a key recorded with a stage that
passed (`inputs_key` in its outputs). A later run whose stage has the same key takes the earlier result:
recorded as passed, its summary saying `reused from run ID`, its outputs pointing at that run
(`reused_from`), the earlier reports copied into this run's folder (so Jenkins publishes them as usual).

The earlier reports are found and copied through the store's run outputs (`<store>/runs/<id>/<stage>/`),
so a fresh agent reuses too; the feedback rows the gate scores are hashed as the gate reads them, from
the store. Never reused: a forced gate, a stage that halted or was skipped, one whose reports are not in
the store any more, and anything when the person asks to redo it (`--no-reuse`, or `--force`/`--skip-perf`,
which change what the stage does).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legion_ci.core.artifact import sha256_file
from legion_ci.core.errors import LegionError
from legion_ci.core.lineage import source_fingerprint
from legion_ci.core.registry import StageRecord
from legion_ci.core.status import StageStatus
from legion_ci.pipeline.graph import stage
from legion_ci.pipeline.stages.base import StageContext, StageResult

REUSABLE = ("gate", "perf")
LOOK_BACK = 50  # the model's newest runs searched for an earlier result
KEY = "inputs_key"
MODEL_LOCUSTFILE = "perf/locustfile.py"


@dataclass(frozen=True)
class Earlier:
    """A passed result of the same stage, with the same inputs, in an earlier run."""

    run_id: str
    record: StageRecord


def _files_digest(path: Path) -> str | None:
    """sha256 over a file, or a folder's source files (as lineage fingerprints a model folder); None when
    nothing is there."""
    if path.is_file():
        return sha256_file(path)
    return source_fingerprint(path) if path.is_dir() else None


def _feedback_digest(ctx: StageContext) -> str | None:
    """The digest of the feedback rows train kept for this run, read from the store as the gate reads them."""
    found = ctx.earlier_file("train", "feedback.csv")
    return _files_digest(found) if found is not None else None


def inputs(ctx: StageContext) -> dict[str, Any] | None:
    """What the stage's result depends on, or None when it is not to be reused this time."""
    if ctx.stage not in REUSABLE or not ctx.options.reuse:
        return None
    spec = ctx.loaded.spec
    artifact = ctx.candidate.artifact_id
    if ctx.stage == "gate":
        if ctx.options.force_reason:
            return None
        production = ctx.registry.alias(spec.name, "production")
        return {
            "stage": "gate",
            "artifact": artifact,
            "gate": spec.gate.model_dump(mode="json"),
            "tests": _files_digest(ctx.model_dir / spec.gate.tests),
            "production": production.artifact_id if production else None,
            "flow": ctx.run.flow,
            "extra_data": sorted(ctx.options.extra_data),
            "feedback": _feedback_digest(ctx),
        }
    if ctx.options.skip_perf_reason or not spec.perf.enabled:
        return None
    return {
        "stage": "perf",
        "artifact": artifact,
        "perf": spec.perf.model_dump(mode="json"),
        "auth": spec.deploy.auth,
        "serving": spec.serving.model_dump(mode="json"),
        "locustfile": _files_digest(ctx.model_dir / MODEL_LOCUSTFILE),
    }


def inputs_key(ctx: StageContext) -> str | None:
    """The hash of `inputs(ctx)`; None when the stage is not reusable now (or its inputs cannot be read)."""
    try:
        found = inputs(ctx)
    except LegionError:
        return None  # the stage itself will say what is wrong
    if found is None:
        return None
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:24]


def find(ctx: StageContext, key: str) -> Earlier | None:
    """The newest earlier run of this model whose same stage passed with these inputs, reports still here."""
    for earlier in ctx.registry.runs(ctx.run.model, limit=LOOK_BACK):
        if earlier.id == ctx.run.id:
            continue
        record = ctx.registry.stages(earlier.id).get(ctx.stage)
        if record is None or record.status is not StageStatus.PASSED:
            continue
        outputs = record.outputs or {}
        if outputs.get(KEY) != key or outputs.get("forced") or outputs.get("halt") or outputs.get("skipped"):
            continue
        try:
            stored = {(f.stage, f.name) for f in ctx.run_outputs.list(earlier.id)}
        except LegionError:
            continue
        if all(tuple(report.split("/", 1)) in stored for report in stage(ctx.stage).reports):
            return Earlier(earlier.id, record)
    return None


def _moved(value: Any, old: str, new: str) -> Any:
    """`value` (JSON-like) with paths under `old` moved under `new`."""
    if isinstance(value, str):
        return new + value[len(old) :] if value.startswith(old) else value
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    return value


def reuse(ctx: StageContext, earlier: Earlier) -> StageResult:
    """The earlier result as this run's: its reports copied here, recorded as passed and reused."""
    source = ctx.settings.runs_dir / earlier.run_id / ctx.stage
    target = ctx.stage_dir()
    for kept in ctx.run_outputs.list(earlier.run_id):  # from the store: this agent may never have run it
        if kept.stage != ctx.stage:
            continue
        dest = target / kept.name
        found = ctx.run_outputs.fetch(earlier.run_id, kept.stage, kept.name, dest)
        if found is not None and found.resolve() != dest.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, dest)
    outputs = _moved(dict(earlier.record.outputs or {}), str(source), str(target))
    outputs["reused_from"] = earlier.run_id
    summary = earlier.record.summary or ""
    first = summary.removeprefix(f"reused from run {outputs.get('reused_first', earlier.run_id)}: ")
    outputs.setdefault("reused_first", earlier.run_id)
    ctx.log(
        f"inputs unchanged since run {earlier.run_id} (artifact, {ctx.stage} settings"
        + (", production version" if ctx.stage == "gate" else "")
        + "): reusing its result; --no-reuse redoes it"
    )
    return StageResult(StageStatus.PASSED, f"reused from run {earlier.run_id}: {first}", outputs)
