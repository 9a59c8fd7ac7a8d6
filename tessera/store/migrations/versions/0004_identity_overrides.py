"""Identity overrides: manual merges and splits, review decisions.

Revision ID: 0004_identity_overrides
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_identity_overrides"
down_revision: str | None = "0003_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_overrides")),
    )
    op.create_index("ix_identity_overrides_dataset", "identity_overrides", ["dataset"])


def downgrade() -> None:
    op.drop_index("ix_identity_overrides_dataset", table_name="identity_overrides")
    op.drop_table("identity_overrides")
