"""Agents (`medark agent`, src/medark/server/tables_agents.py): enrolment tokens and the
enrolled agents with their credentials and heartbeats.

Only SHA-256 hashes of enrolment tokens and agent credentials are stored: a copy of the
catalog lets nobody enrol or act as an agent. An agent's name is unique within its
institution (two hospitals may both call a host "his-db").

Revision ID: 0009_agents
Revises: 0008_server_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_agents"
down_revision = "0008_server_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolment_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("name_hint", sa.String(64)),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("used_by_agent", sa.String(64)),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("credential_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("offline_after", sa.Float(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("advertised", sa.JSON()),
        sa.Column("queue_length", sa.Integer()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("institution_id", "name", name="uq_agents_institution_name"),
    )
    op.create_index("ix_agents_state", "agents", ["state"])


def downgrade() -> None:
    op.drop_index("ix_agents_state", table_name="agents")
    op.drop_table("agents")
    op.drop_table("enrolment_tokens")
