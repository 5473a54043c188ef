"""Run outputs in the store (issue 10, item 3): a stage's reports and kept files are copied to
<store>/runs/<run_id>/<stage>/ however the stage ends, a later stage reads them from there and never from
the workspace, and names that would climb out of the store are refused. Local stores here; S3 in
tests/integration/test_runs_cli.py and tests/e2e/test_store_workspaces.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion_ci.core.errors import StageFailed
from legion_ci.core.registry import Registry, RunRecord
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import StageStatus
from legion_ci.core.store import RunOutputs, Store, StoreError, remove_tree
from legion_ci.pipeline.graph import Stage, graph_order
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import run_stage
from legion_ci.pipeline.stages.base import RunOptions, StageContext, StageResult, keeps_outputs


@keeps_outputs
def writes_reports_then_fails(ctx: StageContext) -> StageResult:
    (ctx.stage_dir() / "report.html").write_text("<html>failed</html>")
    (ctx.stage_dir() / "junit.xml").write_text("<testsuite/>")
    (ctx.stage_dir() / "scratch.bin").write_text("not a report")
    raise StageFailed(ctx.stage, "accuracy 0.5 below 0.9")


@keeps_outputs
def reads_what_train_kept(ctx: StageContext) -> StageResult:
    kept = ctx.earlier_file("train", "feedback.csv")
    (ctx.stage_dir() / "summary.json").write_text("{}")
    return StageResult(StageStatus.PASSED, kept.read_text() if kept else "nothing kept")


class Recorder(PlainReporter):
    """The plain reporter, its log lines also kept for the test."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def log(self, line: str) -> None:
        self.lines.append(line)


GATE_FAILS = Stage("gate", "Gate", "test", "tests.unit.test_run_outputs:writes_reports_then_fails")
GATE_READS = Stage("gate", "Gate", "test", "tests.unit.test_run_outputs:reads_what_train_kept")


def _world(tmp_path: Path, store: str | None) -> tuple[Settings, Registry, RunRecord]:
    settings = load_settings(str(tmp_path / "workspace"), store_url=store)
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    return settings, registry, registry.ensure_run("r1", "m", "/nowhere", "retrain")


def test_a_failed_stage_still_keeps_its_reports_in_the_store(tmp_path: Path) -> None:
    settings, registry, run = _world(tmp_path, str(tmp_path / "store"))
    lines: list[str] = []
    reporter = Recorder(lines)
    with pytest.raises(StageFailed):
        run_stage(settings, registry, run, GATE_FAILS, RunOptions(), reporter)
    kept = tmp_path / "store" / "runs" / "r1" / "gate"
    assert sorted(p.name for p in kept.iterdir()) == ["junit.xml", "report.html"]  # what the graph names
    assert (kept / "report.html").read_text() == "<html>failed</html>"
    assert f"kept 2 file(s) in the store: {kept}" in lines


def test_a_store_that_fails_while_the_stage_fails_leaves_the_stage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder would be: every write into it fails")
    settings, registry, run = _world(tmp_path, str(blocker / "store"))
    lines: list[str] = []
    reporter = Recorder(lines)
    with pytest.raises(StageFailed, match="accuracy 0.5 below 0.9"):
        run_stage(settings, registry, run, GATE_FAILS, RunOptions(), reporter)
    assert any(line.startswith("could not keep the stage's files in the store: ") for line in lines)


def test_a_later_stage_reads_an_earlier_ones_file_from_the_store_not_the_workspace(tmp_path: Path) -> None:
    settings, registry, run = _world(tmp_path, str(tmp_path / "store"))
    exported = tmp_path / "agent-a" / "feedback.csv"
    exported.parent.mkdir()
    exported.write_text("a,target\n1,0\n")
    RunOutputs(Store.from_settings(settings)).keep("r1", "train", [exported])
    result = run_stage(settings, registry, run, GATE_READS, RunOptions(), PlainReporter())
    assert result.summary == "a,target\n1,0\n"
    assert result.outputs["kept"] == {"summary.json": str(tmp_path / "store" / "runs" / "r1" / "gate" / "summary.json")}
    assert not (settings.runs_dir / "r1" / "train").exists()  # nothing came from (or went to) this workspace


def test_the_default_store_is_the_workspace_and_nothing_is_copied(tmp_path: Path) -> None:
    settings, registry, run = _world(tmp_path, None)
    lines: list[str] = []
    reporter = Recorder(lines)
    with pytest.raises(StageFailed):
        run_stage(settings, registry, run, GATE_FAILS, RunOptions(), reporter)
    files = RunOutputs(Store.from_settings(settings)).list("r1")
    assert [(f.stage, f.name) for f in files] == [
        ("gate", "junit.xml"),
        ("gate", "report.html"),
        ("gate", "scratch.bin"),
    ]
    assert files[1].uri == str(settings.runs_dir / "r1" / "gate" / "report.html")
    assert not any(line.startswith("kept ") for line in lines)  # already where the store keeps them


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", ""])
def test_a_run_id_that_would_leave_its_folder_is_refused(tmp_path: Path, run_id: str) -> None:
    outputs = RunOutputs(Store(str(tmp_path), tmp_path))
    with pytest.raises(StoreError, match=r"run id .* cannot name a folder in the store"):
        outputs.uri(run_id, "gate")


def test_removing_a_run_folder_leaves_a_run_whose_id_starts_the_same(tmp_path: Path) -> None:
    outputs = RunOutputs(Store(str(tmp_path), tmp_path))
    for run_id in ("r1", "r10"):
        report = tmp_path / f"{run_id}.html"
        report.write_text(run_id)
        outputs.keep(run_id, "gate", [report])
    assert remove_tree(outputs.uri("r1")) == 1
    assert [f.uri for f in outputs.list("r10")] == [str(tmp_path / "runs" / "r10" / "gate" / "r10.html")]
    assert outputs.list("r1") == []


def test_graph_order_puts_known_stages_first_then_others_alphabetically() -> None:
    names = ["promote", "zeta", "rollback", "gate", "alpha", "train"]
    assert graph_order(names) == ["train", "gate", "promote", "rollback", "alpha", "zeta"]


@pytest.mark.parametrize(
    ("stage_name", "sources"),
    [
        ("gate", ["legion_ci/pipeline/stages/gate.py", "legion_ci/reports/gate_report.py"]),
        ("perf", ["legion_ci/pipeline/stages/perf.py", "legion_ci/reports/perf_report.py"]),
        ("evaluate", ["legion_ci/pipeline/stages/evaluate.py", "legion_ci/reports/ab_report.py"]),
    ],
)
def test_every_file_a_report_links_to_is_kept_beside_it(stage_name: str, sources: list[str]) -> None:
    """A report opened from the store finds what it links to: every relative href in the code that writes a
    stage's reports names a file the graph keeps for that stage."""
    import re

    from legion_ci.pipeline.graph import stage

    root = Path(__file__).resolve().parents[2]
    linked = {
        name
        for source in sources
        for name in re.findall(r'href=\\?"([^"#:{}\\]+)\\?"', (root / source).read_text())
        if "/" not in name
    }
    kept = {k.split("/", 1)[1] for k in stage(stage_name).kept}
    assert linked <= kept, f"{stage_name} reports link to files the store does not keep: {sorted(linked - kept)}"
