"""`legion-ci db upgrade|current`: the registry's schema revision (see legion_ci.core.registry_schema)."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import SQLAlchemyError

from legion_ci.cli.common import add_state_args, settings_of
from legion_ci.core import registry_schema
from legion_ci.core.errors import RegistryError
from legion_ci.core.registry import open_engine, safe_url


def build_db(db: argparse.ArgumentParser, name: str) -> None:
    db.description = "The registry's schema revision. SQLite registries upgrade themselves when opened; a "
    db.description += "PostgreSQL registry is upgraded here, once, after a backup."
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "upgrade",
        help="migrate the registry to this legion-ci's schema (PostgreSQL registries need this after an upgrade)",
    )
    add_state_args(p)
    p.set_defaults(handler=cmd_upgrade)
    p = actions.add_parser("current", help="print the registry's schema revision and whether it is up to date")
    add_state_args(p)
    p.set_defaults(handler=cmd_current)


def _url(args: argparse.Namespace) -> str:
    return settings_of(args).registry_url


def cmd_upgrade(args: argparse.Namespace) -> int:
    url = _url(args)
    engine = open_engine(url)
    try:
        before, after = registry_schema.upgrade(engine, safe_url(url))
    except SQLAlchemyError as exc:
        raise RegistryError(f"registry {safe_url(url)}: upgrade failed, nothing changed: {exc}") from None
    finally:
        engine.dispose()
    if before.revision == after:
        print(f"registry {safe_url(url)}: already at schema revision {after} (current)")
    else:
        print(f"registry {safe_url(url)}: upgraded from schema revision {before.label} to {after}")
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    url = _url(args)
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            current = registry_schema.state(conn)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot read registry {safe_url(url)}: {exc}") from None
    finally:
        engine.dispose()
    head = registry_schema.HEAD
    if current.revision == head:
        note = "current"
    elif current.revision is None or current.revision in registry_schema.known_revisions():
        note = f"behind {head}: run `legion-ci db upgrade`"
    else:
        note = f"newer than this legion-ci knows ({head}): upgrade legion-ci"
    print(f"registry {safe_url(url)}: schema revision {current.label} ({note})")
    return 0
