"""The database audit collectors' state (docs/dbaudit.md): per audited source, the file
being read (device, inode, path), the offset after the last event stored, a fingerprint
of the file's first bytes (a truncated or recreated file is seen), and the collector's
health. The events themselves are audit trail records (no table of their own: one
chain).

Revision ID: 0013_dbaudit_sources
Revises: 0012_approvals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_dbaudit_sources"
down_revision = "0012_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dbaudit_sources",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("path", sa.Text()),
        sa.Column("device", sa.BigInteger()),
        sa.Column("inode", sa.BigInteger()),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.Column("notes", sa.JSON()),
    )


def downgrade() -> None:
    op.drop_table("dbaudit_sources")
