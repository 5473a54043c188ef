"""Run a playbook of ansible/ with ansible-playbook, one progress line per task streamed to a log callback.

ansible-playbook runs with the ansible.posix.jsonl stdout callback, so each task result arrives as one
JSON event while the play runs. ansible-runner would give the same events but writes the whole process
environment (the registry URL, JWT secrets) into its artifacts folder; this does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legion_ci.core import resources
from legion_ci.core.errors import ConfigError, ExternalToolError
from legion_ci.deploy.inventory import PlaybookFiles

Log = Callable[[str], None]


def ansible_dir(configured: Path | None = None) -> Path:
    """`configured` (Settings.ansible_dir, $LEGION_ANSIBLE_DIR), else the ansible/ folder legion-ci carries
    (see legion_ci.core.resources)."""
    folder = configured if configured else resources.folder("ansible")
    if not (folder / "deploy.yml").is_file():
        raise ConfigError(
            f"no Ansible playbooks in {folder} (expected deploy.yml there); "
            "set LEGION_ANSIBLE_DIR to the ansible/ folder of legion-ci"
        )
    return folder


def ansible_playbook() -> str:
    """ansible-playbook beside this python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "ansible-playbook"
    return str(local) if local.exists() else "ansible-playbook"


@dataclass
class TaskResult:
    play: str
    task: str
    status: str  # ok, changed, failed, skipped, unreachable
    message: str = ""


@dataclass
class PlaybookRun:
    playbook: str
    returncode: int
    results: list[TaskResult] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(r.status == "changed" for r in self.results)

    def outputs(self, task: str) -> list[TaskResult]:
        return [r for r in self.results if r.task == task]


class PlaybookFailed(ExternalToolError):
    """A playbook run failed; names the playbook, the task that failed and why."""

    def __init__(
        self, playbook: str, command: str, status: int | str, task: str | None, message: str, output: str = ""
    ) -> None:
        where = f"task {task!r}: {message}" if task else message
        super().__init__("ansible", command, status, f"{playbook} failed at {where}\n{output}".strip())
        self.playbook, self.task = playbook, task


def _message(result: dict[str, Any]) -> str:
    """The useful words of a failed result: msg, then stderr of a command, then the items' messages."""
    parts = [str(result.get("msg") or "")]
    if result.get("stderr"):
        parts.append(str(result["stderr"]).strip().splitlines()[-1])
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            parts.append(_message(item))
    return "; ".join(p for p in parts if p)[:2000]


def run_playbook(
    playbook: str, files: PlaybookFiles, log: Log, timeout: float = 900.0, folder: Path | None = None
) -> PlaybookRun:
    """Run PLAYBOOK of ansible_dir(folder) with the generated inventory and vars; PlaybookFailed if it fails."""
    folder = ansible_dir(folder)
    command = [ansible_playbook(), "-i", str(files.inventory), playbook, "-e", f"@{files.vars}"]
    shown = " ".join(command[1:])
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(folder / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.jsonl",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    stderr_path = files.vars.parent / f"{Path(playbook).stem}.stderr.log"
    run = PlaybookRun(playbook, -1)
    failure: TaskResult | None = None
    log(f"ansible-playbook {playbook} ({files.vars})")
    try:
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, stdin=subprocess.DEVNULL
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                for result in _results(line, run):
                    run.results.append(result)
                    if result.status == "failed" or result.status == "unreachable":
                        failure = result
                    if result.status != "skipped":
                        log(f"{result.task}: {result.status}" + (f": {result.message}" if result.message else ""))
            run.returncode = proc.wait(timeout=timeout)
    except FileNotFoundError:
        raise ConfigError(
            f"ansible-playbook not found ({command[0]}); install ansible-core in legion-ci's "
            "environment (pip install ansible)"
        ) from None
    except subprocess.TimeoutExpired:
        proc.kill()
        raise PlaybookFailed(playbook, shown, "timeout", None, f"still running after {timeout:.0f}s") from None
    if run.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        task = failure.task if failure else None
        message = failure.message if failure else "ansible-playbook failed before any task ran"
        raise PlaybookFailed(playbook, shown, run.returncode, task, message, tail if not failure else "")
    return run


def _results(line: str, run: PlaybookRun) -> list[TaskResult]:
    """Task results in one jsonl event (none for other events, or lines that are not JSON)."""
    line = line.strip()
    if not line.startswith("{"):
        return []
    try:
        event = json.loads(line)
    except ValueError:
        return []
    kind = event.get("_event", "")
    if kind == "v2_playbook_on_stats":
        run.stats = event.get("stats", {})
        return []
    if not kind.startswith("v2_runner_on_"):
        return []
    task = str((event.get("task") or {}).get("name", "?"))
    if "Validating arguments against arg spec" in task:
        task = task.split(" - ", 1)[0]
    play = (event.get("play") or {}).get("name", "")
    out = []
    for result in (event.get("hosts") or {}).values():
        status = kind.removeprefix("v2_runner_on_")
        if status == "ok" and result.get("changed"):
            status = "changed"
        message = _message(result) if status in ("failed", "unreachable") else ""
        out.append(TaskResult(play, task, status, message))
    return out
