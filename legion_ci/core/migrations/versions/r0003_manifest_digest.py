"""versions.manifest_digest: the sha256 of the artifact's manifest.json as train published it
("sha256:<hex>"). The manifest is the artifact's commit marker; a fetch refuses an artifact whose manifest
is not the one registered. Rows registered before this revision keep NULL and are read as before.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("versions", sa.Column("manifest_digest", sa.String(100), nullable=True))  # ALTER TABLE ADD


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("manifest_digest")
