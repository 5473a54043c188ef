"""The lazy command table: `legion-ci --help` lists every command without importing them, each command's
own --help still works, and `legion-ci --version` imports no third-party library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from legion_ci.cli import build_parser, chosen_command, main
from legion_ci.cli.commands import COMMANDS, command
from legion_ci.pipeline.graph import STAGES

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"sqlalchemy", "pydantic", "jenkins", "requests", "httpx", "jinja2", "rich", "numpy", "sklearn", "uvicorn"}


def _loaded_after(argv: list[str], depth: int = 1) -> set[str]:
    """Modules (their first `depth` dotted parts) a fresh `legion-ci ARGV` process has imported when it exits."""
    code = (
        "import sys, json\n"
        "from legion_ci.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted({{'.'.join(m.split('.')[:{depth}]) for m in sys.modules}})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_command_names_are_unique_and_every_stage_has_one() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names)), names
    assert {s.name for s in STAGES} <= set(names)


def test_unknown_command_names_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="commands: run, retrain"):
        command("nope")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for c in COMMANDS:
        assert f"\n    {c.name} " in out or f"\n    {c.name}\n" in out, c.name


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_each_command_builds_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: legion-ci {name} ")


def test_every_command_has_a_handler_when_all_are_built() -> None:
    """build_parser() with no argv builds every command (what docs and the image test use)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {c.name for c in COMMANDS}  # type: ignore[arg-type]
    for name, command_parser in sub.choices.items():  # type: ignore[union-attr]
        nested = [a for a in command_parser._actions if a.dest.endswith(("_command", "_action", "step"))]
        assert command_parser.get_default("handler") is not None or nested, name


def test_the_chosen_command_is_the_first_word_after_top_level_flags() -> None:
    assert chosen_command(["-v", "run", "examples/iris"]) == "run"
    assert chosen_command(["--verbose", "train", "--help"]) == "train"
    assert chosen_command(["--version"]) is None
    assert chosen_command([]) is None


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["nope"])
    assert done.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_import_no_third_party_library(argv: list[str]) -> None:
    assert not _loaded_after(argv) & HEAVY


def test_a_command_imports_only_its_own_module() -> None:
    loaded = {m for m in _loaded_after(["serve", "--help"], depth=3) if m.startswith("legion_ci.cli.")}
    assert loaded == {"legion_ci.cli.commands", "legion_ci.cli.serving", "legion_ci.cli.common"}  # + shared helpers


STORE_COMMANDS = [
    *([s.name] for s in STAGES),
    ["evaluate"],
    ["run"],
    ["retrain"],
    ["serve"],
    ["feedback", "export"],
    ["image", "build"],
    ["runs"],
    ["gc"],
    ["ab", "report"],
]


@pytest.mark.parametrize("argv", STORE_COMMANDS, ids=" ".join)
def test_every_command_that_uses_the_store_takes_store(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    assert "--store URL" in capsys.readouterr().out


def test_store_goes_to_settings_not_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--store reaches the handler as Settings.store_url, over LEGION_STORE_URL, and leaves os.environ alone."""
    import os

    monkeypatch.setenv("LEGION_STORE_URL", "s3://from-env/p")
    seen: dict[str, str | None] = {}

    def handler(args: object) -> int:
        seen["settings"] = getattr(args, "settings").store_url  # noqa: B009
        seen["env"] = os.environ.get("LEGION_STORE_URL")
        return 0

    parser_argv = ["gc", "--home", str(tmp_path), "--store", "s3://from-flag/q/"]
    monkeypatch.setattr("legion_ci.cli.gc.cmd_gc", handler)
    assert main(parser_argv) == 0
    assert seen == {"settings": "s3://from-flag/q", "env": "s3://from-env/p"}
