"""The registry's schema revision: read it, upgrade it (Alembic, scripts in legion_ci/core/migrations).

When legion-ci opens a registry whose schema is not the one this code was written for:

- **SQLite** (the embedded default under $LEGION_HOME, or any sqlite URL): the registry upgrades
  itself. A SQLite file serves one machine, the upgrade runs in one transaction under the file's write
  lock (BEGIN IMMEDIATE), so a second process waits and then finds it done; `make demo` on a fresh
  machine needs no step.
- **A server database** (PostgreSQL through LEGION_REGISTRY_URL): an empty database gets the schema
  (under a transaction-scoped advisory lock, so replicas starting together create it once); a
  database at an older revision is refused with "run `legion-ci db upgrade`". Many agents and the
  management API share it, some possibly still running the previous legion-ci: changing its schema is
  the operator's decision, taken once, after a backup, not a side effect of whichever stage ran first.
- A registry at a revision this code does not know (written by a newer legion-ci) is refused.

A registry written before legion-ci had migrations has the baseline's tables and no version table;
an upgrade stamps it with the baseline revision, then runs any later ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from legion_ci.core.errors import RegistryError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).resolve().parent / "migrations"
HEAD = "0003"  # the newest revision in migrations/versions (a test keeps the two equal)
BASELINE = "0001"  # the schema of registries written before migrations existed
VERSION_TABLE = "alembic_version"
LEGACY_TABLE = "versions"  # present in every registry since the first
PG_LOCK_KEY = 0x4C4547494F4E  # "LEGION": the advisory lock that serialises schema changes


@dataclass(frozen=True)
class SchemaState:
    revision: str | None  # None: no version table
    has_tables: bool  # a registry's tables exist (with or without a version table)

    @property
    def label(self) -> str:
        if self.revision is not None:
            return self.revision
        return "none (written before legion-ci had migrations)" if self.has_tables else "none (empty database)"


def state(conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in tables:
        revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return SchemaState(revision, LEGACY_TABLE in tables)


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


def known_revisions() -> list[str]:
    """Every revision in migrations/versions, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(SCRIPTS))
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    # SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE, see registry._sqlite_setup)


def upgrade(engine: Engine, where: str) -> tuple[SchemaState, str]:
    """Bring the schema to HEAD in one locked transaction; returns (state before, revision after)."""
    from alembic import command

    with engine.begin() as conn:
        _lock(conn)
        before = state(conn)
        _refuse_unknown(before, where)
        if before.revision == HEAD:
            return before, HEAD
        config = _config(conn)
        if before.revision is None and before.has_tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        after = state(conn).revision
    return before, str(after)


def _refuse_unknown(current: SchemaState, where: str) -> None:
    if current.revision is not None and current.revision != HEAD and current.revision not in known_revisions():
        raise RegistryError(
            f"registry {where} has schema revision {current.revision}, which this legion-ci does not know "
            f"(it knows up to {HEAD}); a newer legion-ci wrote it: upgrade legion-ci"
        )


def ensure_current(engine: Engine, where: str) -> None:
    """What opening a registry does: nothing when at HEAD, else upgrade or refuse (see the module doc)."""
    with engine.connect() as conn:
        current = state(conn)
    if current.revision == HEAD:
        return
    _refuse_unknown(current, where)
    if engine.dialect.name == "sqlite" or (not current.has_tables and current.revision is None):
        upgrade(engine, where)
        return
    raise RegistryError(
        f"registry {where} has schema revision {current.label}; this legion-ci needs {HEAD}. "
        f"Back the database up, then run `legion-ci db upgrade` (with the same LEGION_REGISTRY_URL)"
    )
