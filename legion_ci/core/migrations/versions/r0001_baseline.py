"""Baseline: the schema legion-ci created with metadata.create_all before it had migrations (cecde6b).

A registry written then has these tables and no alembic_version; `registry_schema.upgrade` stamps it
with this revision instead of running it.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models", sa.Column("name", sa.String(64), primary_key=True), sa.Column("created_at", sa.String(40))
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), sa.ForeignKey("models.name"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("image", sa.Text),
        sa.Column("image_digest", sa.String(100)),
        sa.Column("created_at", sa.String(40)),
        sa.UniqueConstraint("model", "artifact_id", name="uq_version_artifact"),
    )
    op.create_table(
        "aliases",
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("updated_at", sa.String(40)),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("model_dir", sa.Text, nullable=False),
        sa.Column("flow", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40)),
        sa.Column("updated_at", sa.String(40)),
    )
    op.create_table(
        "stage_results",
        sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("outputs", sa.JSON),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("started_at", sa.String(40)),
        sa.Column("finished_at", sa.String(40)),
        sa.Column("seconds", sa.Float),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("endpoints", sa.JSON),
        sa.Column("detail", sa.JSON),
        sa.Column("created_at", sa.String(40)),
        sa.Column("updated_at", sa.String(40)),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("acquired_at", sa.String(40)),
    )


def downgrade() -> None:
    for table in ("locks", "deployments", "stage_results", "runs", "aliases", "versions", "models"):
        op.drop_table(table)
