"""Alembic migrations of the registry's schema (env.py and versions/, shipped inside the package).

Only `legion_ci.core.registry_schema` runs them; see its docstring for when a registry upgrades itself.

To change the schema: change the tables in `legion_ci/core/registry.py`, add
`versions/rNNNN_<what>.py` with `revision = "NNNN"`, `down_revision` the previous one and its
`upgrade()` (Alembic `op` calls; batch mode, `op.batch_alter_table`, for SQLite column changes), and set
`registry_schema.HEAD`. tests/unit/test_registry_migrations.py (and the PostgreSQL tests) fail until the
migrated schema equals the tables and HEAD names the newest script.
"""
