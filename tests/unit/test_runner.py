"""The stage graph and the runner: order, recording, halts, and how failures are reported."""

from __future__ import annotations

import pytest

from legion_ci.core.errors import NeedsUnmet, StageError, StageFailed
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import RunStatus, StageStatus
from legion_ci.pipeline.graph import FLOWS, ON_DEMAND, STAGES, Stage, check_graph, flow, stage
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import run_stage
from legion_ci.pipeline.stages.base import RunOptions, StageContext, StageResult

CALLS: list[str] = []


def passes(ctx: StageContext) -> StageResult:
    CALLS.append(ctx.stage)
    return StageResult(StageStatus.PASSED, "fine", {"n": len(CALLS)})


def halts(ctx: StageContext) -> StageResult:
    return StageResult(StageStatus.PASSED, "candidate no better", halt="nothing to deploy")


def says_no(ctx: StageContext) -> StageResult:
    raise StageFailed(ctx.stage, "accuracy 0.5 below 0.9")


def has_a_bug(ctx: StageContext) -> StageResult:
    empty: dict[str, StageResult] = {}
    return empty["missing"]


def fake(name: str, handler: str) -> Stage:
    return Stage(name, name.title(), "test stage", f"tests.unit.test_runner:{handler}")


def test_graph_is_a_valid_plan_and_flows_follow_its_order() -> None:
    check_graph()
    order = [s.name for s in STAGES]
    for name, stages in FLOWS.items():  # a flow of stages run on demand (rollout: evaluate) comes after the graph
        positions = [[*order, *(s.name for s in ON_DEMAND)].index(s) for s in stages]
        assert positions == sorted(positions), name
    assert order[:3] == ["validate", "train", "gate"] and order[-1] == "promote"
    assert [s.name for s in flow("push")] == order


def test_unknown_stage_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="stages: validate, train"):
        stage("trian")


def test_graph_with_a_need_out_of_order_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import legion_ci.pipeline.graph as pipeline

    monkeypatch.setattr(pipeline, "STAGES", (Stage("a", "A", "", "x:y", needs=("b",)), Stage("b", "B", "", "x:y")))
    with pytest.raises(ValueError, match="stage 'a' needs"):
        pipeline.check_graph()


@pytest.fixture
def run(registry: Registry):
    return registry.ensure_run("r1", "m", "/nowhere", "push")


def test_result_and_outputs_are_recorded(settings: Settings, registry: Registry, run) -> None:
    result = run_stage(settings, registry, run, fake("train", "passes"), RunOptions(), PlainReporter())
    record = registry.stages("r1")["train"]
    assert result.status == record.status == "passed" and record.outputs["n"] >= 1
    assert record.seconds is not None and record.finished_at


def test_a_halt_skips_later_stages_even_in_a_new_process(settings: Settings, registry: Registry, run) -> None:
    run_stage(settings, registry, run, fake("gate", "halts"), RunOptions(), PlainReporter())
    assert registry.stages("r1")["gate"].status == "halted" and registry.run("r1").status == "halted"
    later = run_stage(settings, registry, run, fake("deploy", "passes"), RunOptions(), PlainReporter())
    assert later.status == "skipped" and "nothing to deploy" in later.summary
    earlier = run_stage(settings, registry, run, fake("train", "passes"), RunOptions(), PlainReporter())
    assert earlier.status == "passed"  # a halt only affects the stages after it


def test_a_failed_check_is_recorded_as_failed(settings: Settings, registry: Registry, run) -> None:
    with pytest.raises(StageFailed) as info:
        run_stage(settings, registry, run, fake("gate", "says_no"), RunOptions(), PlainReporter())
    assert info.value.exit_code == 1
    assert registry.stages("r1")["gate"].status == "failed"
    assert registry.run("r1").status == "failed"


def test_a_bug_becomes_one_line_with_the_traceback_kept(settings: Settings, registry: Registry, run) -> None:
    with pytest.raises(StageError) as info:
        run_stage(settings, registry, run, fake("gate", "has_a_bug"), RunOptions(), PlainReporter())
    assert "unexpected KeyError" in str(info.value) and info.value.exit_code == 2
    trace = settings.runs_dir / "r1" / "gate.traceback.txt"
    assert "KeyError" in trace.read_text()
    assert registry.stages("r1")["gate"].status == "error"


def test_options_come_from_jenkins_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_TARGET", "kubernetes")
    monkeypatch.setenv("LEGION_TRAFFIC_WEIGHT", "35")
    monkeypatch.setenv("LEGION_SKIP_PERF_REASON", "perf cluster down")
    options = RunOptions.from_settings(load_settings(), target="local")
    assert options.target == "local"  # the command line wins over the environment
    assert options.traffic_weight == 35 and options.skip_perf_reason == "perf cluster down"


def test_a_stage_whose_needs_did_not_pass_is_refused_before_anything_is_written(
    settings: Settings, registry: Registry, run
) -> None:
    needy = Stage("deploy", "Deploy", "test stage", "tests.unit.test_runner:passes", needs=("gate", "perf"))
    registry.record_stage("r1", "gate", StageStatus.FAILED, "accuracy 0.5 below 0.9")
    before = len(CALLS)
    with pytest.raises(NeedsUnmet) as info:
        run_stage(settings, registry, run, needy, RunOptions(), PlainReporter())
    assert "needs stage 'gate' (failed) and stage 'perf' (not run) of run 'r1'" in info.value.message
    assert "legion-ci gate /nowhere --run-id r1" in info.value.message and info.value.exit_code == 2
    assert len(CALLS) == before and set(registry.stages("r1")) == {"gate"}
    assert registry.run("r1").status is RunStatus.RUNNING
    registry.record_stage("r1", "gate", StageStatus.PASSED, "fine")
    registry.record_stage("r1", "perf", StageStatus.SKIPPED, "skipped: no perf cluster")
    assert run_stage(settings, registry, run, needy, RunOptions(), PlainReporter()).status is StageStatus.PASSED


def test_a_stage_run_on_demand_is_recorded_but_leaves_the_run_status(
    settings: Settings, registry: Registry, run
) -> None:
    on_demand = Stage("rollback", "Rollback", "test stage", "tests.unit.test_runner:says_no")
    with pytest.raises(StageFailed):
        run_stage(settings, registry, run, on_demand, RunOptions(), PlainReporter())
    assert registry.stages("r1")["rollback"].status is StageStatus.FAILED
    assert registry.run("r1").status is RunStatus.RUNNING
