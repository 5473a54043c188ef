"""Every command's --help says what it does and shows only the options it reads (issue 12, item 12): through
the real `legion-ci` in a subprocess, and over the whole parser tree for what a person would otherwise miss."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from legion_ci.cli import build_parser
from legion_ci.pipeline.graph import STAGES

RUN_OPTIONS = ("--target", "--traffic-weight", "--skip-perf", "--force", "--no-reuse")
# What each stage reads of the run options (the stage modules under legion_ci/pipeline/stages).
READS: dict[str, set[str]] = {
    "validate": set(),
    "train": set(),
    "gate": {"--force", "--no-reuse"},
    "perf": {"--skip-perf", "--no-reuse"},
    "package": {"--target"},
    "deploy": {"--target", "--traffic-weight"},
    "smoke": set(),
    "promote": set(),
}


def help_of(*words: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", *words, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def description(text: str) -> str:
    """The paragraph between the usage lines and the first argument section."""
    body = text.split("\n\n", 1)[1]
    return body.split("\n\n", 1)[0] if not re.match(r"(positional arguments|options):", body) else ""


@pytest.mark.parametrize("command", ["undeploy", "status", "models", "runs"])
def test_a_registry_command_describes_itself(command: str) -> None:
    text = description(help_of(command))
    assert len(text.split()) >= 8, f"`legion-ci {command} --help` has no description: {text!r}"


def test_undeploy_help_says_it_stops_deployments() -> None:
    text = help_of("undeploy")
    assert "Stop every deployment of a model" in description(text)
    assert re.search(r"model\s+the model's name", text)


@pytest.mark.parametrize("name", [s.name for s in STAGES])
def test_a_stage_lists_only_the_run_options_it_reads(name: str) -> None:
    text = help_of(name)
    shown = {flag for flag in RUN_OPTIONS if re.search(rf"\s{re.escape(flag)}\b", text)}
    assert shown == READS[name], f"`legion-ci {name} --help` shows {sorted(shown)}"
    assert "--wait" in text and "--run-id" in text


def test_only_a_stage_that_starts_runs_offers_flow() -> None:
    assert "--flow" in help_of("validate") and "--flow" in help_of("train")
    assert "--flow" not in help_of("gate")  # still accepted: every rendered Jenkinsfile passes it
    assert build_parser(["gate"]).parse_args(["gate", "m", "--flow", "retrain"]).flow == "retrain"


@pytest.mark.parametrize("command", ["run", "retrain"])
def test_a_whole_flow_takes_every_run_option(command: str) -> None:
    text = help_of(command)
    assert all(flag in text for flag in RUN_OPTIONS)


def _parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_step_has_a_description_and_every_argument_a_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser(None), "legion-ci"):
        if not parser.description:
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
                continue
            if not action.help:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest} has no help")
    assert not missing, "\n".join(missing)


def test_a_step_without_its_own_description_shows_its_one_line_help() -> None:
    assert "Print the registry's schema revision" in help_of("db", "current")
