"""Four-eyes approvals (src/medark/server/tables_approvals.py): a security
administrator's reset, disabling or promotion of an administrator account waits for a
second security administrator's approval; a request expires after 24 hours. No password
is stored: an approved reset's one-time password is made at approval.

Revision ID: 0012_approvals
Revises: 0011_server_oversight
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_approvals"
down_revision = "0011_server_oversight"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("requester_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("note", sa.String(1000)),
    )
    op.create_index("ix_approvals_target", "approvals", ["target"])
    op.create_index("ix_approvals_institution_id", "approvals", ["institution_id"])
    op.create_index("ix_approvals_requester_id", "approvals", ["requester_id"])
    op.create_index("ix_approvals_open", "approvals", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_approvals_open", "approvals")
    op.drop_index("ix_approvals_requester_id", "approvals")
    op.drop_index("ix_approvals_institution_id", "approvals")
    op.drop_index("ix_approvals_target", "approvals")
    op.drop_table("approvals")
