"""`legion-ci run` and one subcommand per stage of the graph."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from legion_ci.cli.common import add_state_args, open_state, print_json, settings_of
from legion_ci.core.errors import EXIT_FAILED
from legion_ci.core.preflight import check_ready
from legion_ci.core.spec import load_spec
from legion_ci.pipeline.graph import FLOWS, stage, starts_a_run
from legion_ci.pipeline.progress import STYLES, reporter_for
from legion_ci.pipeline.runner import RunSummary, run_flow, single_stage
from legion_ci.pipeline.stages.base import RunOptions

# The run options, each once: its flag, argparse keywords, and the RunOptions field it fills.
_RUN_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "target": (
        "--target",
        {"choices": ("local", "kubernetes"), "help": "override deploy.target (where the candidate goes)"},
    ),
    "traffic_weight": (
        "--traffic-weight",
        {"type": int, "metavar": "PCT", "help": "override deploy.traffic_weight (the candidate's first share)"},
    ),
    "skip_perf_reason": ("--skip-perf", {"metavar": "REASON", "help": "skip the performance test, recording why"}),
    "force_reason": ("--force", {"metavar": "REASON", "help": "pass a failed gate, recording why"}),
    "no_reuse": (
        "--no-reuse",
        {
            "action": "store_true",
            "default": None,
            "help": "redo the gate and the perf test even when an earlier run passed them with the same inputs",
        },
    ),
}
# Which run options each stage reads (a flow reads them all): a stage's --help shows only these.
STAGE_OPTIONS: dict[str, tuple[str, ...]] = {
    "validate": (),
    "train": (),
    "gate": ("force_reason", "no_reuse"),
    "perf": ("skip_perf_reason", "no_reuse"),
    "package": ("target",),
    "deploy": ("target", "traffic_weight"),
    "smoke": (),
    "promote": (),
    "evaluate": (),
}


def _options_args(parser: argparse.ArgumentParser, fields: tuple[str, ...] = tuple(_RUN_OPTIONS)) -> None:
    group = parser.add_argument_group("run options (Jenkins passes these as LEGION_* variables)")
    for name in fields:
        flag, kwargs = _RUN_OPTIONS[name]
        group.add_argument(flag, dest=name, **kwargs)
    group.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the model's lock held by another run (default: fail at once)",
    )


def _options(args: argparse.Namespace) -> RunOptions:
    given = {name: getattr(args, name, None) for name in _RUN_OPTIONS if name != "no_reuse"}
    reuse = False if getattr(args, "no_reuse", None) else None
    return RunOptions.from_settings(settings_of(args), **given, reuse=reuse, lock_wait=args.wait)


def build_run(run: argparse.ArgumentParser, name: str) -> None:
    run.description = "Run every stage of the flow here, in order, with a live progress display."
    run.add_argument("model_dir", metavar="MODEL_DIR", help="folder holding legion.yaml and train.py")
    run.add_argument("--flow", choices=sorted(FLOWS), default="push", help="which stages to run (default: push)")
    run.add_argument("--run-id", help="reuse or name the run (default: a new id)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    _options_args(run)
    add_state_args(run, store=True)
    run.set_defaults(handler=cmd_run)


def build_retrain(retrain: argparse.ArgumentParser, name: str) -> None:
    retrain.description = (
        "Run the retrain flow: train on the spec's data plus every labelled request of the feedback "
        "store (each once, its newest valid label), then the same gate (the candidate must beat production) and "
        "perf, then deploy it beside production at the spec's traffic weight (a canary rollout: its first step), "
        "where the <model>-rollout job (`legion-ci evaluate`) promotes or rolls it back by evidence. A candidate "
        "no better than production deploys nothing. One pipeline per model at a time: see --wait."
    )
    retrain.add_argument("model_dir", metavar="MODEL_DIR", help="folder holding legion.yaml and train.py")
    retrain.add_argument("--run-id", help="reuse or name the run (default: a new id)")
    retrain.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    _options_args(retrain)
    add_state_args(retrain, store=True)
    retrain.set_defaults(handler=cmd_run, flow="retrain")


def build_stage(p: argparse.ArgumentParser, name: str) -> None:
    """`legion-ci NAME`: one stage of the graph, alone in this process."""
    st = stage(name)
    if starts_a_run(st):
        how = "Given a new --run-id (or none, for train) it starts a run; validate without --run-id records nothing."
        run_help = "the run this stage belongs to (created if new)"
    else:
        how = (
            f"Needs stage(s) {', '.join(st.needs)} to have passed in its run, whose outputs it reads from the "
            "run record, so it can run alone in a fresh process (Jenkins 'Restart from Stage')."
        )
        run_help = "the run this stage belongs to (default: the model's latest run; never created here)"
    p.description = f"{st.title}: {st.summary}. {how}"
    p.add_argument("model_dir", metavar="MODEL_DIR", nargs="?", help="model folder (holding legion.yaml)")
    p.add_argument("--run-id", help=run_help)
    # Every rendered Jenkinsfile passes --flow to every stage; only a stage that may start a run reads it.
    home = next((f for f, names in FLOWS.items() if st.name in names), "push")  # the first flow it is in
    flow_help = f"flow of a new run (default: {home})" if starts_a_run(st) else argparse.SUPPRESS
    p.add_argument("--flow", choices=sorted(FLOWS), default=home, help=flow_help)
    p.add_argument("--json", action="store_true", help="print the stage result as JSON on stdout")
    _options_args(p, STAGE_OPTIONS.get(st.name, ()))
    add_state_args(p, store=True)
    p.set_defaults(handler=cmd_stage, stage=st.name)


def cmd_run(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    summary = run_flow(
        settings, registry, args.model_dir, args.flow, _options(args), reporter_for(args.json), run_id=args.run_id
    )
    if args.json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
    return summary.exit_code


def cmd_stage(args: argparse.Namespace) -> int:
    if args.stage == "validate" and args.run_id is None:
        loaded = load_spec(args.model_dir or ".")  # plain validation: no run is recorded
        check_ready(loaded)
        spec = loaded.spec
        print(f"{loaded.file}: valid ({spec.name} {spec.version}, target {spec.deploy.target})")
        return 0
    settings, registry = open_state(args)
    run, result = single_stage(
        settings,
        registry,
        args.stage,
        args.model_dir,
        args.run_id,
        args.flow,
        _options(args),
        reporter_for(args.json, stream_is_tty=False),
    )
    if args.json:
        print_json(
            {
                "run_id": run.id,
                "stage": args.stage,
                "status": result.status,
                "summary": result.summary,
                "outputs": result.outputs,
            }
        )
    return 0 if result.status.satisfied else EXIT_FAILED


def _print_summary(summary: RunSummary) -> None:
    console = Console()
    table = Table(title=f"run {summary.run_id} · {summary.status} in {summary.seconds:.1f}s", title_justify="left")
    for col in ("stage", "status", "time", "result"):
        table.add_column(col)
    for row in summary.stages:
        seconds = f"{row['seconds']:.1f}s" if row.get("seconds") is not None else ""
        table.add_row(
            row["stage"], f"[{STYLES.get(row['status'], '')}]{row['status']}[/]", seconds, escape(row["summary"] or "")
        )
    console.print(table)
