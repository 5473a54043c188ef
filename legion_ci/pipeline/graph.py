"""The stage graph: every stage once, as data. The local runner, the rendered Jenkinsfiles and
`legion-ci <stage>` all read this list, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from legion_ci.pipeline.stages.base import StageContext, StageResult


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: `legion-ci <name> MODEL_DIR --run-id ID` runs it."""

    name: str
    title: str
    summary: str
    handler: str  # "module:function" taking a StageContext and returning a StageResult
    needs: tuple[str, ...] = ()
    reports: tuple[str, ...] = field(default=())  # files (relative to the run folder) Jenkins publishes
    # Further files of the stage's folder kept in the store beside its reports, at
    # <store>/runs/<run_id>/<name>: the files the reports link to, and what a later stage reads.
    keeps: tuple[str, ...] = field(default=())

    @property
    def kept(self) -> tuple[str, ...]:
        """Every file of this stage that outlives the workspace: its reports, then what it keeps."""
        return self.reports + self.keeps

    def load(self) -> Callable[[StageContext], StageResult]:
        module, _, func = self.handler.partition(":")
        return getattr(import_module(module), func)  # type: ignore[no-any-return]


STAGES: tuple[Stage, ...] = (
    Stage("validate", "Validate", "check legion.yaml and the files it names", "legion_ci.pipeline.stages.validate:run"),
    # train needs nothing: it loads (so validates) the spec itself, and may start a run as validate does.
    Stage(
        "train",
        "Train",
        "run train.py; register the artifact with its lineage",
        "legion_ci.pipeline.stages.train:run",
        keeps=("train/feedback.csv", "train/feedback.json"),  # a retrain's ground truth and its window
    ),
    Stage(
        "gate",
        "Quality gate",
        "metric thresholds on the held-out split; no regression against production",
        "legion_ci.pipeline.stages.gate:run",
        needs=("train",),
        reports=("gate/junit.xml", "gate/report.html", "gate/summary.json"),
        keeps=("gate/model-tests.xml", "gate/model-tests.log"),
    ),
    Stage(
        "perf",
        "Performance test",
        "load the candidate's server with Locust; p95/p99 latency, throughput and error rate against the SLA",
        "legion_ci.pipeline.stages.perf:run",
        needs=("gate",),
        reports=("perf/junit.xml", "perf/report.html", "perf/summary.json", "perf/locust.html"),
        keeps=("perf/locust_stats.csv", "perf/locust_stats_history.csv", "perf/locust.log", "perf/server.log"),
    ),
    Stage(
        "package",
        "Package",
        "Docker image with the lineage in its labels; push it, record its digest",
        "legion_ci.pipeline.stages.package:run",
        needs=("gate", "perf"),
    ),
    Stage(
        "deploy",
        "Deploy",
        "start the candidate beside production at the spec's traffic weight",
        "legion_ci.pipeline.stages.deploy:run",
        needs=("gate", "perf"),
    ),
    Stage(
        "smoke",
        "Smoke test",
        "send the example rows; answers must equal the artifact's own predictions",
        "legion_ci.pipeline.stages.smoke:run",
        needs=("deploy",),
    ),
    Stage(
        "promote",
        "Promote",
        "move production to the candidate and retire the old version",
        "legion_ci.pipeline.stages.promote:run",
        needs=("smoke",),
    ),
)

# Stages of no flow, run on demand against a run: a failed smoke test rolls back by itself; Jenkins (or a
# person, or the management API) runs `legion-ci rollback --run-id ID` when a later step fails.
ROLLBACK = Stage(
    "rollback",
    "Rollback",
    "take the run's candidate out of service; after a promote, the version it replaced serves again",
    "legion_ci.pipeline.stages.rollback:run",
    needs=("train",),
)
# The rollout job's one stage (`<model>-rollout`, on the spec's rollout.schedule): no run before it; each
# evaluation is a run of its own that reads the deployments, the capture store and earlier decisions.
EVALUATE = Stage(
    "evaluate",
    "Evaluate rollout",
    "join predictions with ground truth per variant; advance, promote or roll back the candidate by evidence",
    "legion_ci.pipeline.stages.evaluate:run",
    reports=("evaluate/junit.xml", "evaluate/report.html", "evaluate/summary.json"),
)
ON_DEMAND: tuple[Stage, ...] = (ROLLBACK, EVALUATE)

# A flow is the ordered subset of stages one kind of job runs.
FLOWS: dict[str, tuple[str, ...]] = {
    "push": tuple(s.name for s in STAGES),
    "retrain": ("validate", "train", "gate", "perf", "package", "deploy", "smoke"),
    "rollout": ("evaluate",),
}


def stage(name: str) -> Stage:
    """The stage called `name` (of the graph, or run on demand); KeyError lists the valid names."""
    for s in STAGES + ON_DEMAND:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r} (stages: {', '.join(s.name for s in STAGES + ON_DEMAND)})")


def graph_order(names: Iterable[str]) -> list[str]:
    """Stage names in the graph's order, then the stages run on demand, then any other name (a stage an
    older or newer legion-ci recorded) alphabetically."""
    known = [s.name for s in STAGES + ON_DEMAND]
    return sorted(names, key=lambda n: (known.index(n), "") if n in known else (len(known), n))


def starts_a_run(st: Stage) -> bool:
    """Whether `st` may create its run: only a stage that needs no earlier one (validate, train)."""
    return not st.needs


def flow(name: str) -> tuple[Stage, ...]:
    """The stages of a flow, in the graph's order."""
    return tuple(stage(n) for n in FLOWS[name])


def check_graph() -> None:
    """Every stage's needs come earlier in the graph (so the order is a valid plan)."""
    seen: set[str] = set()
    for s in STAGES:
        missing = [n for n in s.needs if n not in seen]
        if missing:
            raise ValueError(f"stage {s.name!r} needs {missing} which do not come before it")
        seen.add(s.name)
