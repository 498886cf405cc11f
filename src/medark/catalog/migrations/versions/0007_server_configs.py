"""The management server's versioned configuration documents, one per institution (filled in by its change; a placeholder keeps the revision chain fixed).

Revision ID: 0007_server_configs
Revises: 0006_server_accounts
"""

from __future__ import annotations

revision = "0007_server_configs"
down_revision = "0006_server_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
