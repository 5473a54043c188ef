"""Alembic's environment: migrations run on the connection (and in the transaction) the caller opened."""

from __future__ import annotations

from alembic import context

from legion_ci.core.registry import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
