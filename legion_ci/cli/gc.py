"""`legion-ci gc`: remove artifacts and run outputs nothing needs (the rules: legion_ci/core/retention.py)."""

from __future__ import annotations

import argparse

from legion_ci.cli.common import add_state_args, open_state, print_json


def build_gc(p: argparse.ArgumentParser, name: str) -> None:
    from legion_ci.core.retention import DEFAULT_KEEP

    p.description = (
        "Remove, from the artifact store and the registry together, every artifact that no alias (production, "
        "...), no live deployment and none of the model's newest N versions uses, and the runs (records and "
        "outputs in the store) of what it removes. Never removes what production or a live deployment uses. "
        "Prints each removal."
    )
    p.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help=f"newest versions (and runs) to keep per model (default {DEFAULT_KEEP})",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for a model's lock")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    add_state_args(p, store=True)
    p.set_defaults(handler=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    import sys

    from legion_ci.core.retention import collect

    settings, registry = open_state(args)

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    outcome = collect(settings, registry, args.keep, args.dry_run, log, wait=args.wait)
    if args.json:
        print_json(outcome.as_dict())
    else:
        for kept in outcome.kept:
            print(f"kept {kept['label']}: {', '.join(kept['reasons'])}")
        artifacts = sum(1 for r in outcome.removed if r.kind == "artifact")
        runs = len(outcome.removed) - artifacts
        objects = sum(r.objects for r in outcome.removed)
        verb = "would remove" if args.dry_run else "removed"
        print(f"gc {verb} {artifacts} artifact(s) and {runs} run(s), {objects} object(s) in the store")
        if args.dry_run:
            print("dry run: nothing was removed")
    return 2 if outcome.problems else 0  # something could not be removed (locked, store unreachable)
