"""How a run shows itself: a live table on a terminal, plain lines in Jenkins logs, nothing with --json."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from legion_ci.core.status import StageStatus
from legion_ci.pipeline.graph import Stage

STYLES: dict[str, str] = {
    StageStatus.PASSED: "green",
    StageStatus.FAILED: "bold red",
    StageStatus.ERROR: "bold red",
    StageStatus.SKIPPED: "yellow",
    StageStatus.HALTED: "blue",  # the gate report's halted banner is blue too
    StageStatus.RUNNING: "cyan",
    StageStatus.PENDING: "dim",
}
ICONS: dict[str, str] = {
    StageStatus.PASSED: "✔",
    StageStatus.FAILED: "✘",
    StageStatus.ERROR: "✘",
    StageStatus.SKIPPED: "↷",
    StageStatus.HALTED: "■",
    StageStatus.RUNNING: "…",
    StageStatus.PENDING: "·",
}


class Reporter(Protocol):
    def begin(self, title: str, stages: tuple[Stage, ...]) -> None: ...
    def started(self, stage: Stage) -> None: ...
    def finished(self, stage: Stage, status: StageStatus, summary: str, seconds: float) -> None: ...
    def log(self, line: str) -> None: ...
    def end(self) -> None: ...


class PlainReporter:
    """One line per event: what Jenkins' console and log files want."""

    def __init__(self, stream: object = None, verbose_logs: bool = True) -> None:
        self.console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)  # type: ignore[arg-type]
        self.verbose_logs = verbose_logs

    def begin(self, title: str, stages: tuple[Stage, ...]) -> None:
        self.console.print(f"{title}: {' → '.join(s.name for s in stages)}", markup=False)

    def started(self, stage: Stage) -> None:
        self.console.print(f"[{stage.name}] {stage.title}: {stage.summary}", markup=False)

    def finished(self, stage: Stage, status: StageStatus, summary: str, seconds: float) -> None:
        self.console.print(
            f"[{stage.name}] {status.upper()} in {seconds:.1f}s: {summary}", style=STYLES.get(status), markup=False
        )

    def log(self, line: str) -> None:
        if self.verbose_logs:
            self.console.print(f"    {line}", markup=False, style="dim")

    def end(self) -> None:
        pass


class QuietReporter(PlainReporter):
    """Nothing at all (for --json)."""

    def __init__(self) -> None:
        super().__init__()

    def begin(self, title: str, stages: tuple[Stage, ...]) -> None: ...
    def started(self, stage: Stage) -> None: ...
    def finished(self, stage: Stage, status: StageStatus, summary: str, seconds: float) -> None: ...
    def log(self, line: str) -> None: ...


class LiveReporter:
    """A table that updates in place: stage, state, elapsed time, result."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.rows: dict[str, list[object]] = {}
        self.stages: tuple[Stage, ...] = ()
        self.current: tuple[str, float] | None = None
        self.live: Live | None = None
        self.title = ""

    def _table(self) -> Table:
        table = Table(title=self.title, title_justify="left", expand=False, show_edge=False)
        for col in ("", "stage", "time", "result"):
            table.add_column(col)
        for stage in self.stages:
            status, seconds, summary = self.rows.get(stage.name, [StageStatus.PENDING, None, stage.summary])
            if self.current and self.current[0] == stage.name:
                seconds = time.monotonic() - self.current[1]
            style = STYLES[str(status)]
            table.add_row(
                Text(ICONS[str(status)], style=style),
                Text(stage.title, style=style),
                f"{seconds:.1f}s" if seconds is not None else "",
                Text(str(summary), style="dim" if status is StageStatus.PENDING else ""),
            )
        return table

    def begin(self, title: str, stages: tuple[Stage, ...]) -> None:
        self.title, self.stages = title, stages
        self.live = Live(get_renderable=self._table, console=self.console, refresh_per_second=8, transient=False)
        self.live.start()

    def started(self, stage: Stage) -> None:
        self.current = (stage.name, time.monotonic())
        self.rows[stage.name] = [StageStatus.RUNNING, 0.0, stage.summary]

    def finished(self, stage: Stage, status: StageStatus, summary: str, seconds: float) -> None:
        self.current = None
        self.rows[stage.name] = [status, seconds, summary]

    def log(self, line: str) -> None:
        self.console.print(Text(f"  {line}", style="dim"))

    def end(self) -> None:
        if self.live:
            self.live.refresh()
            self.live.stop()


def reporter_for(json_output: bool, stream_is_tty: bool | None = None) -> Reporter:
    if json_output:
        return QuietReporter()
    tty = sys.stderr.isatty() if stream_is_tty is None else stream_is_tty
    return LiveReporter() if tty else PlainReporter()
