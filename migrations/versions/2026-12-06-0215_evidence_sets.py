"""Evidence sets: named sets of measured transfers per transfer model and protocol;
transfer_runs.shared, an admin's mark that a run is evidence for every owner; jobs.priority, so
owners' jobs go ahead of backfill (library embedding and calibration); task names unique per
owner among their own tasks and among the library's, apart (an admin's own "wnli" no longer
clashes with the library's: a library task is never dropped for it); tasks.labelled (a task
whose rows carry no label).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("transfer_model", sa.String(length=300), nullable=False),
        sa.Column("protocol", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("file_hash", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["owners.id"],
            name=op.f("fk_evidence_sets_created_by_owners"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_evidence_sets_name")),
    )
    with op.batch_alter_table("evidence_sets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evidence_sets_transfer_model"), ["transfer_model"], unique=False
        )
    op.create_table(
        "evidence_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_id"],
            ["evidence_sets.id"],
            name=op.f("fk_evidence_rows_set_id_evidence_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_rows")),
        sa.UniqueConstraint(
            "set_id",
            "source",
            "target",
            "seed",
            name=op.f("uq_evidence_rows_set_id_source_target_seed"),
        ),
    )
    with op.batch_alter_table("evidence_rows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_rows_set_id"), ["set_id"], unique=False)
    with op.batch_alter_table("transfer_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shared", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("labelled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.drop_constraint("uq_tasks_owner_id_name", type_="unique")
        batch_op.create_unique_constraint(
            "uq_tasks_owner_id_name_is_library", ["owner_id", "name", "is_library"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("labelled")
        batch_op.drop_constraint("uq_tasks_owner_id_name_is_library", type_="unique")
        batch_op.create_unique_constraint("uq_tasks_owner_id_name", ["owner_id", "name"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("transfer_runs", schema=None) as batch_op:
        batch_op.drop_column("shared")
    op.drop_table("evidence_rows")
    op.drop_table("evidence_sets")
