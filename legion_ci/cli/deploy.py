"""`legion-ci rollback|undeploy|deployments list|set-weight`: take versions out of service, look at
deployments, move traffic by hand.

`legion-ci deploy` is the pipeline's deploy stage (legion_ci.cli.pipeline): legion_ci.deploy.rollout.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from legion_ci.cli.common import add_state_args, open_state, print_json
from legion_ci.core.errors import ConfigError
from legion_ci.core.registry import DeploymentRecord
from legion_ci.deploy import local, rollout
from legion_ci.pipeline.graph import ROLLBACK
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions


def _percent(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 100:
        raise argparse.ArgumentTypeError(f"invalid weight {value!r} (expected a whole percentage, 0-100)")
    return int(value)


def build_rollback(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "Roll back the candidate of a run: weight 0, drained by the router, stopped, marked "
        "rolled-back (on Kubernetes, its Helm release is uninstalled through ansible/undeploy.yml). "
        "After a promote, the version it replaced is deployed again and made production first. Safe to rerun."
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", nargs="?", help="model folder (default run: its latest)")
    p.add_argument("--run-id", help="the run whose candidate to roll back")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for the model's lock")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_state_args(p)
    p.set_defaults(handler=cmd_rollback)


def build_undeploy(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "Stop every deployment of a model (or of one of its versions): each is set to weight 0, drained by "
        "the router so that no request in flight fails, then stopped and recorded as stopped (on Kubernetes, "
        "its Helm release is uninstalled through ansible/undeploy.yml). The versions stay in the registry."
    )
    p.add_argument("model", help="the model's name (as in legion.yaml)")
    p.add_argument("--version", help="only this version (default: every version of the model)")
    add_state_args(p)
    p.set_defaults(handler=cmd_undeploy)


def build_deployments(d: argparse.ArgumentParser, name: str) -> None:
    d.description = (
        "List the deployments of every model (or of one), or give one deployment a share of its model's "
        "traffic by hand."
    )
    steps = d.add_subparsers(dest="step", metavar="STEP", required=True)

    s = steps.add_parser(
        "list", help="deployments of every model, or of one", description="Deployments of every model, or of one."
    )
    s.add_argument("model", nargs="?", help="only this model's deployments")
    s.add_argument("--all", action="store_true", help="include stopped and rolled-back ones")
    s.add_argument("--json", action="store_true", help="print the deployments as JSON on stdout")
    add_state_args(s)
    s.set_defaults(handler=cmd_list)

    what = "give a deployment a share of its model's traffic; the others share the rest"
    s = steps.add_parser("set-weight", help=what, description=f"{what[0].upper()}{what[1:]}.")
    s.add_argument("deployment_id", type=int, help="the deployment's id (see `legion-ci deployments list`)")
    s.add_argument("weight", type=_percent, help="its share, a whole percentage 0-100")
    add_state_args(s)
    s.set_defaults(handler=cmd_set_weight)


def cmd_rollback(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    if args.model_dir is None and args.run_id is None:
        raise ConfigError("give MODEL_DIR (its latest run), --run-id, or both")
    reporter = PlainReporter(verbose_logs=not args.json)
    options = RunOptions.from_settings(settings, lock_wait=args.wait)
    run, result = single_stage(
        settings, registry, ROLLBACK.name, args.model_dir, args.run_id, "push", options, reporter
    )
    if args.json:
        print_json({"run_id": run.id, "stage": ROLLBACK.name, "status": result.status, "summary": result.summary})
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


def cmd_set_weight(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    weights = local.set_weight(registry, args.deployment_id, args.weight)
    print(", ".join(f"deployment {k}: {v}%" for k, v in sorted(weights.items())))
    return 0
