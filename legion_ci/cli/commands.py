"""The table of `legion-ci` subcommands: name, one-line help, and the "module:function" that builds its parser.

`legion-ci --help` is printed from this table alone; the builder's module is imported only when its command
is the one being run (`legion_ci.cli.build_parser`). A builder is `function(parser, name) -> None`: it adds
the command's description, arguments and `handler`. Keep this module free of imports beyond the standard
library and `legion_ci.pipeline.graph` (itself plain data), or every `legion-ci` start pays for them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from legion_ci.pipeline.graph import STAGES


@dataclass(frozen=True)
class Command:
    """One `legion-ci NAME` subcommand."""

    name: str
    help: str
    builder: str  # "module:function" taking (parser, name); imported only when this command runs

    def build(self, parser: argparse.ArgumentParser) -> None:
        module, _, func = self.builder.partition(":")
        build: Callable[[argparse.ArgumentParser, str], None] = getattr(import_module(module), func)
        build(parser, self.name)


_PIPELINE = "legion_ci.cli.pipeline"

COMMANDS: tuple[Command, ...] = (
    Command("run", "run the whole pipeline on one machine", f"{_PIPELINE}:build_run"),
    Command(
        "retrain",
        "what the cron job runs: train on fresh data plus feedback, gate, perf, deploy as candidate",
        f"{_PIPELINE}:build_retrain",
    ),
    *(Command(s.name, f"stage: {s.summary}", f"{_PIPELINE}:build_stage") for s in STAGES),
    Command(
        "evaluate",
        "stage of the rollout job: decide the candidate's canary step by evidence (advance, promote, roll back)",
        f"{_PIPELINE}:build_stage",
    ),
    Command("ab", "A/B rollouts: the report of a model's evaluations", "legion_ci.cli.ab:build_ab"),
    Command("models", "list models with their production version and deployments", "legion_ci.cli.models:build_models"),
    Command(
        "runs",
        "list recent runs and their stages; `runs show RUN_ID`: one run's reports",
        "legion_ci.cli.models:build_runs",
    ),
    Command("status", "versions, aliases and deployments of one model", "legion_ci.cli.models:build_status"),
    Command(
        "serve",
        "serve an artifact over HTTP (JWT auth, validation, capture, metrics)",
        "legion_ci.cli.serving:build_serve",
    ),
    Command("token", "issue JWTs for model servers and the management API", "legion_ci.cli.serving:build_token"),
    Command(
        "feedback",
        "the feedback loop's captured predictions and ground truth",
        "legion_ci.cli.serving:build_feedback",
    ),
    Command(
        "router",
        "the A/B router: one stable URL in front of every deployed model version",
        "legion_ci.cli.router:build_router",
    ),
    Command(
        "rollback",
        "take a run's candidate out of service (production keeps the traffic)",
        "legion_ci.cli.deploy:build_rollback",
    ),
    Command(
        "undeploy",
        "stop a model's deployments (or one version's) without failing a request",
        "legion_ci.cli.deploy:build_undeploy",
    ),
    Command(
        "deployments", "list deployments and change their traffic weights", "legion_ci.cli.deploy:build_deployments"
    ),
    Command("render", "write the Jenkinsfiles and job config.xml of models", "legion_ci.cli.jenkins:build_render"),
    Command(
        "schedule", "print the next times Jenkins runs a model's retrain job", "legion_ci.cli.jenkins:build_schedule"
    ),
    Command("jenkins", "sync jobs to a Jenkins server, start and follow builds", "legion_ci.cli.jenkins:build_jenkins"),
    Command("image", "Docker images of artifacts", "legion_ci.cli.image:build_image"),
    Command(
        "api",
        "the management REST API (inspect, route, promote, deploy, roll back)",
        "legion_ci.cli.api:build_api",
    ),
    Command("db", "the registry's schema: show its revision, upgrade it", "legion_ci.cli.db:build_db"),
    Command(
        "gc",
        "remove artifacts and run outputs no alias, deployment or newest version uses",
        "legion_ci.cli.gc:build_gc",
    ),
)


def command(name: str) -> Command:
    """The command called `name`; KeyError lists the valid names."""
    for c in COMMANDS:
        if c.name == name:
            return c
    raise KeyError(f"no command {name!r} (commands: {', '.join(c.name for c in COMMANDS)})")
