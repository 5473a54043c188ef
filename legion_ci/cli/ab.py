"""`legion-ci ab report NAME`: the A/B report of a model's rollout evaluations, from the registry's events."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legion_ci.cli.common import add_state_args, open_state, print_json

if TYPE_CHECKING:
    from legion_ci.core.registry import EventRecord, Registry


def build_ab(ab: argparse.ArgumentParser, name: str) -> None:
    ab.description = "A/B rollouts decided by evidence (docs/rollout.md)."
    sub = ab.add_subparsers(dest="ab_command", metavar="ACTION", required=True)
    report = sub.add_parser(
        "report",
        help="write the A/B report of a model's current (or latest) rollout",
        description=(
            "Write the A/B report (report.html, summary.json, junit.xml) of the newest candidate a rollout "
            "evaluated for model NAME: every evaluation of it, each variant's metric with its interval, "
            "traffic, labelled rows, latency, errors, and the decisions with why. Read from the registry's "
            "events; nothing is measured again."
        ),
    )
    report.add_argument("model", metavar="NAME", help="model name")
    report.add_argument("--out", metavar="DIR", default=None, help="folder for the report (default: NAME-ab)")
    report.add_argument("--json", action="store_true", help="print the newest evaluation's summary as JSON")
    add_state_args(report, store=True)
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from legion_ci.core.errors import NotFoundError
    from legion_ci.reports.ab_report import write_ab_reports
    from legion_ci.rollout.evaluation import EVENT_KIND

    _, registry = open_state(args)
    events = registry.events(args.model, EVENT_KIND, limit=1)
    if not events:
        known = registry.model_names()
        if args.model not in known:
            raise NotFoundError(f"no model {args.model!r} in the registry (models: {', '.join(known) or 'none'})")
        raise NotFoundError(
            f"model {args.model!r} has no rollout evaluation yet; run `legion-ci evaluate MODEL_DIR` "
            "(the <model>-rollout job does, on rollout.schedule)"
        )
    latest = max(events, key=lambda e: e.id)  # the newest by id, not by the list's order
    history = [e.detail for e in _history(registry, args.model, EVENT_KIND, latest)]
    out = Path(args.out or f"{args.model}-ab")
    files = write_ab_reports(out, latest.detail, history)
    if args.json:
        print_json(latest.detail)
    else:
        decision = latest.detail.get("decision", {})
        print(f"{args.model}: {len(history)} evaluation(s) of this candidate; latest: {latest.action}")
        print(f"  {decision.get('reason', '')}")
        for f in files:
            print(f"  wrote {f}")
    return 0


def _candidate_artifact(detail: dict[str, Any]) -> str | None:
    """The artifact id of the candidate an evaluation event's detail describes."""
    for variant in detail.get("variants", []):
        if isinstance(variant, dict) and variant.get("role") == "candidate":
            found = variant.get("artifact_id")
            return str(found) if found is not None else None
    return None


def _history(registry: Registry, model: str, kind: str, latest: EventRecord) -> list[EventRecord]:
    """Every evaluation of the latest event's candidate, oldest first. Linked by version id while the version
    exists; once gc removed it (the events' version_id is NULL) by the candidate's artifact id in the detail,
    else only the latest event itself: never every candidate's history mixed."""
    if latest.version_id is not None:
        found = registry.events(model, kind, version_id=latest.version_id, limit=1000)
    else:
        artifact = _candidate_artifact(latest.detail or {})
        found = [
            e
            for e in registry.events(model, kind, limit=1000)
            if e.id == latest.id
            or (e.version_id is None and artifact is not None and _candidate_artifact(e.detail or {}) == artifact)
        ]
    return sorted(found, key=lambda e: e.id)
