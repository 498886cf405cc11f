"""Agents: enrolment tokens, agents and their credentials, heartbeats (filled in by its change; a placeholder keeps the revision chain fixed).

Revision ID: 0009_agents
Revises: 0008_server_jobs
"""

from __future__ import annotations

revision = "0009_agents"
down_revision = "0008_server_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
