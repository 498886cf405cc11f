"""Alert delivery: whether each notice reached its channels, so an undelivered one is
retried later instead of lost.

Revision ID: 0003_alert_delivery
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_alert_delivery"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before keep NULL: their delivery was not recorded, and they are not resent.
    op.add_column("alerts", sa.Column("delivery", sa.String(20)))
    op.add_column("alerts", sa.Column("notice", sa.JSON()))
    op.add_column("alerts", sa.Column("delivery_channels", sa.JSON()))
    op.add_column("alerts", sa.Column("delivery_tries", sa.Integer()))
    op.add_column("alerts", sa.Column("delivery_error", sa.Text()))
    op.add_column("alerts", sa.Column("delivery_at", sa.DateTime(timezone=True)))
    op.create_index("ix_alerts_delivery", "alerts", ["delivery"])


def downgrade() -> None:
    op.drop_index("ix_alerts_delivery", "alerts")
    with op.batch_alter_table("alerts") as batch:  # SQLite drops columns by copying
        for column in ("delivery_at", "delivery_error", "delivery_tries",
                       "delivery_channels", "notice", "delivery"):
            batch.drop_column(column)
