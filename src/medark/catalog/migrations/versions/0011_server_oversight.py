"""Oversight on the management server: alerts and DR actions name their institution (two
hospitals of a regional center may give a plan or a system the same name), and the
periodic reports the server generates (src/medark/server/tables_reports.py).

A report's PDF is kept in the catalog (`content`, bytea on PostgreSQL), not in a state
directory: every server process behind a load balancer serves every download, the row
and its file are written in one transaction (a report is never `done` without its PDF),
and the catalog's backup keeps them. A PDF is a few hundred kilobytes.

Revision ID: 0011_server_oversight
Revises: 0010_grants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_server_oversight"
down_revision = "0010_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("institution", sa.String(64)))
    op.create_index("ix_alerts_institution", "alerts", ["institution"])
    op.add_column("dr_actions", sa.Column("institution", sa.String(64)))
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("institution", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("config_version", sa.Integer()),
        sa.Column("file_name", sa.String(300), nullable=False),
        sa.Column("size", sa.BigInteger()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("content", sa.LargeBinary()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("worker", sa.String(300), nullable=False),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_reports_institution", "reports", ["institution", "id"])
    op.create_index("ix_reports_status", "reports", ["status"])


def downgrade() -> None:
    op.drop_index("ix_reports_status", "reports")
    op.drop_index("ix_reports_institution", "reports")
    op.drop_table("reports")
    with op.batch_alter_table("dr_actions") as batch:
        batch.drop_column("institution")
    op.drop_index("ix_alerts_institution", "alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("institution")
