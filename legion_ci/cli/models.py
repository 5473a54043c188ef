"""`legion-ci models|runs|status`: look at what the registry holds (`undeploy` lives in cli/deploy.py)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from legion_ci.cli.common import add_state_args, open_state, print_json
from legion_ci.core.errors import ConfigError, NotFoundError


def build_models(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "List every model in the registry: its production version and artifact, how many versions it has and "
        "how many deployments."
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    add_state_args(p)
    p.set_defaults(handler=cmd_models)


def build_runs(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "`legion-ci runs [MODEL]` lists the newest runs (of one model, or all) with their stages in the graph's "
        "order; `legion-ci runs show RUN_ID` prints one run's stages (status, duration) and the URIs of the "
        "reports they kept in the artifact store. Run ids are never shortened; --json for scripts."
    )
    p.add_argument("words", nargs="*", metavar="MODEL | show RUN_ID", help="a model to list, or `show RUN_ID`")
    p.add_argument("--limit", type=int, default=10, help="how many runs to list (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    add_state_args(p, store=True)
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
    from legion_ci.pipeline.runs import run_detail, run_rows

    settings, registry = open_state(args)
    words: list[str] = args.words
    if words[:1] == ["show"]:
        if len(words) != 2:
            raise ConfigError(f"`legion-ci runs show` takes one RUN_ID, got {len(words) - 1}: {' '.join(words[1:])!r}")
        detail = run_detail(settings, registry, words[1])
        if args.json:
            print_json(detail)
        else:
            _print_run(detail)
        return 0
    if len(words) > 1:
        raise ConfigError(f"`legion-ci runs` takes one MODEL (or `show RUN_ID`), got {' '.join(words)!r}")
    if args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: expected a positive number of runs")
    rows = run_rows(registry, words[0] if words else None, args.limit)
    if args.json:
        print_json(rows)
        return 0
    _print_runs(rows)
    return 0


def _console(fits: int) -> Console:
    """A console at least `fits` columns wide: a table that needs more than the terminal (or the 80 columns
    of a pipe) runs past the edge instead of cutting a cell (a run id is what people copy)."""
    console = Console()
    if not console.is_terminal or console.width < fits:
        console = Console(width=max(fits, console.width if console.is_terminal else 80))
    return console


def _print_runs(rows: list[dict[str, Any]]) -> None:
    headers = ("run", "flow", "status", "started", "stages")
    cells = [
        (
            r["run_id"],
            r["flow"],
            r["status"],
            r["created_at"][:16].replace("T", " "),
            " ".join(f"{k}:{v}" for k, v in r["stages"].items()),
        )
        for r in rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for column in table.columns[:4]:
        column.no_wrap = True  # never cut or fold a run id (what people copy), nor the short columns
    for c in cells:
        table.add_row(*c[:4], escape(c[4] or "-"))
    # In a terminal the stages wrap beside the others; piped, each run is one whole line (grep sees rows).
    stages_width = 16 if Console().is_terminal else widths[4]
    _console(sum(widths[:4]) + 2 * len(headers) + stages_width).print(table)


def _print_run(detail: dict[str, Any]) -> None:
    lines = [
        f"run {detail['run_id']}",
        f"  model {detail['model']} · {detail['flow']} flow · {detail['status']} · started {detail['created_at'][:19]}",
        f"  store {detail['store']}",
    ]
    for s in detail["stages"]:
        took = f"{s['seconds']:.1f}s" if s["seconds"] is not None else "-"
        again = f" ({s['attempts']} attempts)" if s["attempts"] > 1 else ""
        lines.append(f"  {s['stage']:<9} {s['status']:<8} {took:>8}{again}  {s['summary']}")
        lines.extend(f"      {uri}" for uri in s["files"].values())
    if not detail["stages"]:
        lines.append("  no stage has run yet")
    print("\n".join(lines))


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
