"""Events: what a rollout's evaluation decided (advance, promote, roll back, keep testing) and the evidence
it read, one row per decision, newest last.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("run_id", sa.String(200)),
        sa.Column("summary", sa.Text),
        sa.Column("detail", sa.JSON),
        sa.Column("created_at", sa.String(40)),
    )
    op.create_index("ix_events_model", "events", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_model", table_name="events")
    op.drop_table("events")
