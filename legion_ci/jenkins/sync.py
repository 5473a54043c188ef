"""`legion-ci jenkins sync`: plan, then create or update the folder and jobs of each model.

An item is unchanged when the digest stamped in its description equals the rendered one, so a
second sync plans nothing even after Jenkins rewrote the XML on save. Items legion-ci manages (their
description carries the digest) that no longer come from any given model are stale: kept, and
listed, unless `--prune` is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from legion_ci.jenkins.client import FOLDER_CLASS, JenkinsClient, description_of
from legion_ci.jenkins.render import DIGEST_RE, JobConfig

Verb = Literal["create", "update", "unchanged", "delete", "stale"]
SYMBOL = {"create": "+", "update": "~", "unchanged": "=", "delete": "-", "stale": "!"}


@dataclass(frozen=True)
class Action:
    verb: Verb
    name: str
    kind: Literal["folder", "job"]
    reason: str
    item: JobConfig | None = None

    def line(self) -> str:
        return f"  {SYMBOL[self.verb]} {self.verb:<9} {self.kind:<6} {self.name}  ({self.reason})"


@dataclass
class Plan:
    actions: list[Action]

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.verb in ("create", "update", "delete")]

    @property
    def empty(self) -> bool:
        return not self.changes

    def render(self, url: str) -> str:
        counts = {v: sum(1 for a in self.actions if a.verb == v) for v in SYMBOL}
        head = (
            f"Plan for {url}: {counts['create']} to create, {counts['update']} to update, "
            f"{counts['delete']} to delete, {counts['unchanged']} unchanged"
            + (f", {counts['stale']} stale (kept; --prune deletes them)" if counts["stale"] else "")
        )
        return "\n".join([head, *(a.line() for a in self.actions)])


def _managed_digest(xml: str | None) -> str | None:
    if xml is None:
        return None
    found = DIGEST_RE.search(description_of(xml))
    return found.group(1) if found else ""


def plan(client: JenkinsClient, items: list[JobConfig], prune: bool) -> Plan:
    """Compare the rendered items with what Jenkins has."""
    actions: list[Action] = []
    wanted = {i.full_name for i in items}
    for item in items:
        current = client.config(item.full_name)
        digest = _managed_digest(current)
        if current is None:
            actions.append(Action("create", item.full_name, item.kind, "new", item))
        elif digest == item.digest:
            actions.append(Action("unchanged", item.full_name, item.kind, f"digest {item.digest}", item))
        elif digest == "":
            actions.append(
                Action(
                    "update", item.full_name, item.kind, "exists but is not managed by legion-ci: taking it over", item
                )
            )
        else:
            actions.append(Action("update", item.full_name, item.kind, f"digest {digest} -> {item.digest}", item))
    actions.extend(_stale(client, wanted, prune))
    return Plan(actions)


def _stale(client: JenkinsClient, wanted: set[str], prune: bool) -> list[Action]:
    """Managed model folders (and jobs in them) that no given model renders; jobs before their folder.

    Only model folders are considered: top-level jobs (the platform job) are never stale.
    """
    verb: Verb = "delete" if prune else "stale"
    out: list[Action] = []
    for top in client.children():
        name = top["full_name"]
        if top["class"] != FOLDER_CLASS or not _managed_digest(client.config(name)):
            continue
        if name not in wanted:
            for child in client.children(name):
                out.append(Action(verb, child["full_name"], "job", "its model is gone"))
            out.append(Action(verb, name, "folder", "its model is gone"))
            continue
        for child in client.children(name):
            if child["full_name"] not in wanted and _managed_digest(client.config(child["full_name"])):
                out.append(Action(verb, child["full_name"], "job", "no longer rendered for this model"))
    return out


def apply(client: JenkinsClient, the_plan: Plan) -> list[Action]:
    """Carry out the plan in order: folders are created before their jobs, jobs deleted before folders."""
    done: list[Action] = []
    deleted: set[str] = set()
    for action in the_plan.actions:
        if action.verb == "create" and action.item is not None:
            client.create(action.name, action.item.xml)
        elif action.verb == "update" and action.item is not None:
            client.reconfigure(action.name, action.item.xml)
        elif action.verb == "delete":
            parent = action.name.rpartition("/")[0]
            if parent in deleted:
                continue
            if client.exists(action.name):
                client.delete(action.name)
            deleted.add(action.name)
        else:
            continue
        done.append(action)
    return done
