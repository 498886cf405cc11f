"""DR actions: every switchover, failover, failback and drill with its steps, and the
claim that lets only one run per system at a time.

The claim is a unique partial index on (system) over the rows still `running`: inserting
a second running row for a system fails inside the database, atomically, on SQLite and
on PostgreSQL alike (both have partial indexes), so two hosts sharing a central catalog
cannot both start a switch. A finished row leaves the index, freeing the system.

Revision ID: 0004_dr_actions
Revises: 0003_alert_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_dr_actions"
down_revision = "0003_alert_delivery"
branch_labels = None
depends_on = None

RUNNING_ONLY = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "dr_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("switch_seconds", sa.Float()),
        sa.Column("data_loss", sa.JSON()),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_dr_actions_system", "dr_actions", ["system", "id"])
    op.create_index("uq_dr_actions_running", "dr_actions", ["system"], unique=True,
                    sqlite_where=RUNNING_ONLY, postgresql_where=RUNNING_ONLY)


def downgrade() -> None:
    op.drop_index("uq_dr_actions_running", "dr_actions")
    op.drop_index("ix_dr_actions_system", "dr_actions")
    op.drop_table("dr_actions")
