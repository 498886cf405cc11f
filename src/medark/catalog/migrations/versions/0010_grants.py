"""Cross-institution grants (src/medark/server/tables_grants.py): a user of one
institution asks for access to another institution's patient data (a system or some
snapshots), for a purpose and a time window; the data owner's security administrator
approves or denies. `expired_at` records when the expiry was audited, so the periodic
task appends one `grant.expire` per grant even with several server processes.

Revision ID: 0010_grants
Revises: 0009_agents
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_grants"
down_revision = "0009_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("requester_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("from_institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("to_institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(1000), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision_note", sa.String(1000)),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("expired_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_grants_requester_id", "grants", ["requester_id"])
    op.create_index("ix_grants_from_institution_id", "grants", ["from_institution_id"])
    op.create_index("ix_grants_to_institution_id", "grants", ["to_institution_id"])
    op.create_index("ix_grants_open", "grants", ["expired_at", "ends_at"])


def downgrade() -> None:
    op.drop_index("ix_grants_open", "grants")
    op.drop_index("ix_grants_to_institution_id", "grants")
    op.drop_index("ix_grants_from_institution_id", "grants")
    op.drop_index("ix_grants_requester_id", "grants")
    op.drop_table("grants")
