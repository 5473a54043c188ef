"""`legion-ci rollback|undeploy|deployments ...`: take versions out of service, and the small steps the
Ansible role model_local calls (`deployments show|spawn|record|set-weight|retire|stop`).

`legion-ci deploy` is the pipeline's deploy stage (legion_ci.cli.pipeline); it runs ansible/deploy.yml.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from legion_ci.cli.common import add_state_args, open_state, print_json
from legion_ci.core.errors import ConfigError
from legion_ci.core.processes import stop_pid
from legion_ci.core.registry import DeploymentRecord
from legion_ci.deploy import local, rollout
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import open_run
from legion_ci.pipeline.stages import rollback
from legion_ci.pipeline.stages.base import RunOptions


def _endpoint(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("pid"), int):
        raise argparse.ArgumentTypeError(
            f'invalid endpoint {value!r} (expected JSON like {{"url": "http://127.0.0.1:8081", "pid": 1234}})'
        )
    return data


def _percent(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 100:
        raise argparse.ArgumentTypeError(f"invalid weight {value!r} (expected a whole percentage, 0-100)")
    return int(value)


def build_rollback(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "Roll back the candidate of a run through ansible/rollback.yml: weight 0, drained "
        "by the router, stopped, marked rolled-back. After a promote, the version it "
        "replaced is deployed again and made production first. Safe to rerun."
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", nargs="?", help="model folder (default run: its latest)")
    p.add_argument("--run-id", help="the run whose candidate to roll back")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for the model's lock")
    p.add_argument("--json", action="store_true")
    add_state_args(p)
    p.set_defaults(handler=cmd_rollback)


def build_undeploy(p: argparse.ArgumentParser, name: str) -> None:
    p.description = "Through ansible/undeploy.yml: weight 0, drained by the router, stopped."
    p.add_argument("model")
    p.add_argument("--version", help="only this version (default: every version of the model)")
    add_state_args(p)
    p.set_defaults(handler=cmd_undeploy)


def build_deployments(d: argparse.ArgumentParser, name: str) -> None:
    steps = d.add_subparsers(dest="step", metavar="STEP", required=True)

    s = steps.add_parser("list", help="deployments of every model, or of one")
    s.add_argument("model", nargs="?")
    s.add_argument("--all", action="store_true", help="include stopped and rolled-back ones")
    s.add_argument("--json", action="store_true")
    add_state_args(s)
    s.set_defaults(handler=cmd_list)

    s = steps.add_parser("show", help="the serving deployment of a version, if every replica is ready (JSON)")
    s.add_argument("--version-id", type=int, required=True)
    s.add_argument("--target", default=local.TARGET, choices=("local", "kubernetes"))
    s.add_argument("--json", action="store_true", help="(the output is always JSON)")
    add_state_args(s)
    s.set_defaults(handler=cmd_show)

    s = steps.add_parser(  # internal: the Ansible role's step, so no help line
        "spawn", description="start a version's replicas detached; prints their endpoints (JSON list)"
    )
    s.add_argument("artifact", metavar="ARTIFACT_DIR")
    s.add_argument("--replicas", type=int, default=1, help="how many model servers (default 1)")
    s.add_argument(
        "--port",
        type=int,
        action="append",
        default=[],
        dest="ports",
        help="port of the next replica (repeat; default 0: any free one)",
    )
    s.add_argument("--no-auth", action="store_true")
    s.add_argument("--no-capture", action="store_true")
    s.add_argument("--capture-rate", type=float, default=1.0)
    add_state_args(s)
    s.set_defaults(handler=cmd_spawn)

    s = steps.add_parser(  # internal: the Ansible role's step, so no help line
        "record", description="record started replicas as a deployment with a traffic weight (JSON)"
    )
    s.add_argument("--version-id", type=int, required=True)
    s.add_argument("--weight", type=_percent, required=True, help="percent of the model's traffic (0-100)")
    s.add_argument(
        "--endpoint",
        type=_endpoint,
        action="append",
        required=True,
        help='one replica as JSON {"url": ..., "pid": ...} (what `spawn` prints); repeat per replica',
    )
    s.add_argument("--target", default=local.TARGET, choices=("local", "kubernetes"))
    s.add_argument("--json", action="store_true", help="(the output is always JSON)")
    add_state_args(s)
    s.set_defaults(handler=cmd_record)

    s = steps.add_parser(
        "set-weight", help="give a deployment a share of its model's traffic; the others share the rest"
    )
    s.add_argument("deployment_id", type=int)
    s.add_argument("weight", type=_percent)
    add_state_args(s)
    s.set_defaults(handler=cmd_set_weight)

    s = steps.add_parser("retire", help="weight 0, wait for the router to drain, stop, mark (JSON: the retired)")
    s.add_argument("--id", type=int, action="append", dest="ids", help="a deployment id; repeat for several")
    s.add_argument("--model", help="every active deployment of this model (when no --id)")
    s.add_argument("--version", help="only this version of --model")
    s.add_argument("--status", choices=("stopped", "rolled-back"), default="stopped")
    s.add_argument("--drain-timeout", type=float, default=30.0)
    s.add_argument("--json", action="store_true", help="(the output is always JSON)")
    add_state_args(s)
    s.set_defaults(handler=cmd_retire)

    s = steps.add_parser("stop", help="stop model-server processes by pid (only legion-ci servers are signalled)")
    s.add_argument("--pid", type=int, action="append", default=[], dest="pids")
    s.set_defaults(handler=cmd_stop)


def cmd_rollback(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    if args.model_dir is None and args.run_id is None:
        raise ConfigError("give MODEL_DIR (its latest run), --run-id, or both")
    run = open_run(registry, args.model_dir, args.run_id, "push", first_stage=False)
    reporter = PlainReporter(verbose_logs=not args.json)
    options = RunOptions.from_settings(settings, lock_wait=args.wait)
    result = rollback.run_recorded(settings, registry, run, options, reporter.log)
    if args.json:
        print_json({"run_id": run.id, "stage": rollback.NAME, "status": result.status, "summary": result.summary})
    else:
        print(result.summary)
    return 0


def cmd_undeploy(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    folder = settings.deployments_dir / args.model / "undeploy"
    retired = rollout.undeploy(settings, registry, args.model, args.version, folder, PlainReporter().log)
    what = f"{args.model} {args.version}" if args.version else args.model
    print(f"stopped {len(retired)} deployment(s) of {what}" + (f": {retired}" if retired else ""))
    return 0


def _as_json(d: DeploymentRecord | None) -> dict[str, Any] | None:
    return None if d is None else dict(d.__dict__)


def cmd_list(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    rows = registry.deployments(args.model, active_only=not args.all)
    if args.json:
        print_json([_as_json(d) for d in rows])
        return 0
    table = Table("id", "model", "version", "target", "status", "weight", "replicas")
    for d in rows:
        table.add_row(
            str(d.id),
            d.model,
            str(d.detail.get("version")),
            d.target,
            d.status,
            f"{d.weight}%",
            ", ".join(str(e.get("url")) for e in d.endpoints or []),
        )
    Console().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    print_json({"deployment": _as_json(local.find_serving(registry, args.version_id, args.target))})
    return 0


def cmd_spawn(args: argparse.Namespace) -> int:
    settings, _ = open_state(args)
    flags = local.ServerFlags(auth=not args.no_auth, capture=not args.no_capture, capture_rate=args.capture_rate)
    print_json(local.spawn_replicas(settings, str(Path(args.artifact).resolve()), args.replicas, flags, args.ports))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    version = registry.version_by_id(args.version_id)
    print_json(_as_json(local.record(registry, version, args.endpoint, args.weight, args.target)))
    return 0


def cmd_set_weight(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    weights = local.set_weight(registry, args.deployment_id, args.weight)
    print(", ".join(f"deployment {k}: {v}%" for k, v in sorted(weights.items())))
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    chosen = local.select(registry, args.model, args.version, args.ids, target=local.TARGET)
    retired = local.retire(settings, registry, chosen, args.status, args.drain_timeout)
    print_json([_as_json(d) for d in retired])
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    stopped = [pid for pid in args.pids if stop_pid(pid)]
    print(f"stopped {len(stopped)} model server(s)" + (f": {stopped}" if stopped else ""))
    return 0
