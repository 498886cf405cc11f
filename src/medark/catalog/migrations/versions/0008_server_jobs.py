"""Jobs the server queues and follows: institution, agent, progress, cancel, events (filled in by its change; a placeholder keeps the revision chain fixed).

Revision ID: 0008_server_jobs
Revises: 0007_server_configs
"""

from __future__ import annotations

revision = "0008_server_jobs"
down_revision = "0007_server_configs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
