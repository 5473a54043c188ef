"""`legion-ci models|runs|status`: look at what the registry holds (`undeploy` lives in cli/deploy.py)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from legion_ci.cli.common import add_state_args, open_state, print_json
from legion_ci.core.errors import NotFoundError


def build_models(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "List every model in the registry: its production version and artifact, how many versions it has and "
        "how many deployments."
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    add_state_args(p)
    p.set_defaults(handler=cmd_models)


def build_runs(p: argparse.ArgumentParser, name: str) -> None:
    p.description = "List the newest runs (of every model, or of one) with the state of each of their stages."
    p.add_argument("model", nargs="?", help="only this model's runs")
    p.add_argument("--limit", type=int, default=10, help="how many runs (default: 10)")
    p.add_argument("--json", action="store_true", help="print the runs as JSON on stdout")
    add_state_args(p)
    p.set_defaults(handler=cmd_runs)


def build_status(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "Show one model: every version with its artifact id, aliases (production, ...) and creation time, "
        "then its active deployments with their traffic weights and endpoints."
    )
    p.add_argument("model", help="the model's name (as in legion.yaml)")
    p.add_argument("--json", action="store_true", help="print the model's state as JSON on stdout")
    add_state_args(p)
    p.set_defaults(handler=cmd_status)


def cmd_models(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    rows: list[dict[str, Any]] = []
    for name in registry.model_names():
        prod = registry.alias(name, "production")
        rows.append(
            {
                "model": name,
                "production": prod.version if prod else None,
                "artifact_id": prod.artifact_id if prod else None,
                "versions": len(registry.versions(name)),
                "deployments": len(registry.deployments(name)),
            }
        )
    if args.json:
        print_json(rows)
        return 0
    table = Table("model", "production", "artifact", "versions", "deployments")
    for r in rows:
        table.add_row(
            r["model"],
            r["production"] or "-",
            (r["artifact_id"] or "-")[:12],
            str(r["versions"]),
            str(r["deployments"]),
        )
    Console().print(table)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    runs = registry.runs(args.model, args.limit)
    data: list[dict[str, Any]] = [
        {
            "run_id": r.id,
            "model": r.model,
            "flow": r.flow,
            "status": r.status,
            "created_at": r.created_at,
            "stages": {k: v.status for k, v in registry.stages(r.id).items()},
        }
        for r in runs
    ]
    if args.json:
        print_json(data)
        return 0
    table = Table("run", "flow", "status", "started", "stages")
    for r in data:
        table.add_row(
            r["run_id"],
            r["flow"],
            r["status"],
            r["created_at"][:19],
            escape(" ".join(f"{k}:{v}" for k, v in r["stages"].items())),
        )
    Console().print(table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    _, registry = open_state(args)
    versions = registry.versions(args.model)
    if not versions:
        raise NotFoundError(
            f"no model {args.model!r} in the registry (models: {', '.join(registry.model_names()) or 'none'})"
        )
    aliases = registry.aliases_of(args.model)
    deployments = registry.deployments(args.model)
    if args.json:
        print_json(
            {
                "model": args.model,
                "aliases": aliases,
                "versions": [
                    {
                        "id": v.id,
                        "version": v.version,
                        "artifact_id": v.artifact_id,
                        "metrics": v.manifest.metrics,
                        "image": v.image,
                    }
                    for v in versions
                ],
                "deployments": [d.__dict__ for d in deployments],
            }
        )
        return 0
    by_version: dict[int, list[str]] = {}
    for alias, vid in aliases.items():
        by_version.setdefault(vid, []).append(alias)
    table = Table("id", "version", "artifact", "aliases", "created", title=f"model {args.model}", title_justify="left")
    for v in versions:
        table.add_row(str(v.id), v.version, v.artifact_id, ", ".join(by_version.get(v.id, [])), v.created_at[:19])
    console = Console()
    console.print(table)
    dtable = Table(
        "deployment", "version", "target", "weight", "endpoints", title="active deployments", title_justify="left"
    )
    for d in deployments:
        dtable.add_row(
            str(d.id),
            str(d.detail.get("version")),
            d.target,
            f"{d.weight}%",
            ", ".join(e.get("url", "") for e in d.endpoints or []),
        )
    console.print(dtable)
    return 0
