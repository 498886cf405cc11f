"""The job history.

Revision ID: 0001_jobs
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_jobs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(120), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("bytes_added", sa.BigInteger()),
        sa.Column("snapshot_id", sa.String(64)),
        sa.Column("rpo_seconds", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("details", sa.JSON()),
        sa.UniqueConstraint("plan", "kind", "scheduled_for", "attempt",
                            name="uq_jobs_plan_kind_slot_attempt"),
    )
    op.create_index("ix_jobs_plan", "jobs", ["plan"])
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status", "jobs")
    op.drop_index("ix_jobs_plan", "jobs")
    op.drop_table("jobs")
