"""What every stage receives (StageContext) and returns (StageResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, wraps
from pathlib import Path
from typing import Any

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import LegionError, StageError
from legion_ci.core.registry import Registry, RunRecord, VersionRecord
from legion_ci.core.settings import Settings
from legion_ci.core.spec import LoadedSpec, load_spec
from legion_ci.core.status import StageStatus
from legion_ci.core.store import CACHE, RUNS, RunOutputs, Store, StoredFile, open_version
from legion_ci.pipeline.graph import stage as graph_stage


@dataclass(frozen=True)
class RunOptions:
    """Choices a person makes for one run; in Jenkins they come from the build parameters (env)."""

    target: str | None = None
    traffic_weight: int | None = None
    skip_perf_reason: str | None = None
    force_reason: str | None = None
    retrain_from_scratch: bool = False
    extra_data: tuple[str, ...] = ()
    lock_wait: float = 0.0
    reuse: bool = True  # take a gate or perf result from an earlier run with the same inputs (pipeline/reuse.py)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RunOptions:
        """LEGION_TARGET, LEGION_TRAFFIC_WEIGHT, LEGION_SKIP_PERF_REASON, LEGION_FORCE_REASON from the
        settings, then `overrides` (command-line values; None means not given)."""
        values: dict[str, Any] = {
            "target": settings.target,
            "traffic_weight": settings.traffic_weight,
            "skip_perf_reason": settings.skip_perf_reason,
            "force_reason": settings.force_reason,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class StageResult:
    """A stage's verdict. `halt` ends the flow here without failing it (e.g. a retrain that found
    nothing better than production): later stages of the run are skipped with that reason."""

    status: StageStatus
    summary: str
    outputs: dict[str, Any] = field(default_factory=dict)
    halt: str | None = None

    def __post_init__(self) -> None:
        self.status = StageStatus(self.status)  # "passed" or a member: a member (an unknown word fails here)


@dataclass
class StageContext:
    """One stage's view of its run: the spec, the registry, earlier stages' outputs, a log."""

    settings: Settings
    registry: Registry
    run: RunRecord
    stage: str
    options: RunOptions
    log: Callable[[str], None]

    @cached_property
    def loaded(self) -> LoadedSpec:
        return load_spec(self.run.model_dir)

    @property
    def model_dir(self) -> Path:
        return Path(self.run.model_dir)

    @property
    def run_dir(self) -> Path:
        path = self.settings.runs_dir / self.run.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_dir(self) -> Path:
        path = self.run_dir / self.stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def output(self, stage: str) -> dict[str, Any]:
        """What an earlier stage of this run produced; it must have passed."""
        record = self.registry.stages(self.run.id).get(stage)
        if record is None or not record.status.satisfied:
            state = record.status if record else "not run"
            raise StageError(
                self.stage,
                f"needs stage {stage!r} of run {self.run.id!r} to have passed ({state}); "
                f"run `legion-ci {stage} {self.run.model_dir} --run-id {self.run.id}` first",
            )
        return record.outputs or {}

    @cached_property
    def run_outputs(self) -> RunOutputs:
        return RunOutputs(Store.from_settings(self.settings))

    def keep_outputs(self) -> list[StoredFile]:
        """Copy this stage's reports and kept files (graph: Stage.kept) from the workspace to
        <store>/runs/<run_id>/<stage>/, so they outlive the workspace. Jenkins still publishes the
        workspace's copies."""
        try:
            names = graph_stage(self.stage).kept
        except KeyError:  # not a stage of the graph (a test's): nothing to keep
            return []
        files = [self.run_dir / rel for rel in names if (self.run_dir / rel).is_file()]
        kept = self.run_outputs.keep(self.run.id, self.stage, files)
        where = self.run_outputs.uri(self.run.id, self.stage)
        if kept and where != str(self.run_dir / self.stage):  # not when the store is this workspace
            self.log(f"kept {len(kept)} file(s) in the store: {where}")
        return kept

    def earlier_file(self, stage: str, name: str) -> Path | None:
        """A file an earlier stage of this run kept (e.g. train's feedback.csv), read from the store and
        never from this workspace (a stage may run on any agent); None when that stage kept no such file."""
        dest = self.settings.home / CACHE / RUNS / self.run.id / stage / name
        return self.run_outputs.fetch(self.run.id, stage, name, dest)

    @cached_property
    def candidate(self) -> VersionRecord:
        """The version the train stage of this run produced."""
        return self.registry.version_by_id(int(self.output("train")["version_id"]))

    @cached_property
    def candidate_artifact(self) -> Artifact:
        return open_version(self.settings, self.candidate)

    @property
    def target(self) -> str:
        return self.options.target or self.loaded.spec.deploy.target

    @property
    def traffic_weight(self) -> int:
        """The candidate's first share: as given, else a canary rollout's first step, 0 for a shadow rollout (it
        gets copies of production's requests instead), else deploy.traffic_weight."""
        rollout = self.loaded.spec.rollout
        if self.options.traffic_weight:
            return self.options.traffic_weight
        if rollout.strategy == "shadow":
            return 0
        return rollout.steps[0] if rollout.strategy == "canary" else self.loaded.spec.deploy.traffic_weight


StageFunction = Callable[[StageContext], StageResult]


def keeps_outputs(run: StageFunction) -> StageFunction:
    """Decorate a stage's `run`: however it ends (passed, failed, error), the files it wrote that the graph
    says it keeps go to the store. When the stage itself failed, a store error is logged and the stage's
    own error stands; when it passed, a store error fails it (its outputs would not outlive the workspace)."""

    @wraps(run)
    def keeping(ctx: StageContext) -> StageResult:
        try:
            result = run(ctx)
        except BaseException:
            try:
                ctx.keep_outputs()
            except LegionError as exc:
                ctx.log(f"could not keep the stage's files in the store: {exc.message}")
            raise
        kept = ctx.keep_outputs()
        if kept:
            result.outputs["kept"] = {k.name: k.uri for k in kept}
        return result

    return keeping
