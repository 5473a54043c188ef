"""Alembic migrations of the registry's schema (env.py and versions/, shipped inside the package).

Only `legion_ci.core.registry_schema` runs them; see its docstring for when a registry upgrades itself.
"""
