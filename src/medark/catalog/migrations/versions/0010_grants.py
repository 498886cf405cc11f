"""Cross-institution grants (filled in by its change; a placeholder keeps the revision chain fixed).

Revision ID: 0010_grants
Revises: 0009_agents
"""

from __future__ import annotations

revision = "0010_grants"
down_revision = "0009_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
