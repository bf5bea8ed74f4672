"""tasks.data_hash: the rows' hash without name or ids, so a library task holding a target's own
data is never recommended to it. Rows from before stay NULL (never matched).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_tasks_data_hash", ["data_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_data_hash")
        batch_op.drop_column("data_hash")
