"""The management server's versioned configuration documents, one series per institution
(src/medark/server/tables_configs.py): each saved medark.toml document is a new row,
(institution, version) unique, so two concurrent saves cannot both take a version.

Revision ID: 0007_server_configs
Revises: 0006_server_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_server_configs"
down_revision = "0006_server_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"),
                  nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("institution_id", "version",
                            name="uq_config_versions_institution_version"),
    )


def downgrade() -> None:
    op.drop_table("config_versions")
