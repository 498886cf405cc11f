"""The audit trail: one append-only, hash-chained, signed record per audited action, and
the chain's head.

The head row (one row, id 1) is what serialises appends: each append first locks it
(SELECT … FOR UPDATE on PostgreSQL; on SQLite an UPDATE of it, which takes the write
lock), so two server processes on one catalog are queued and can never both extend the
same record.
Triggers refuse UPDATE and DELETE on the records themselves (a database owner can drop
them; `medark audit verify` and the repository anchors catch what is then changed).

Revision ID: 0005_audit_trail
Revises: 0004_dr_actions
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005_audit_trail"
down_revision = "0004_dr_actions"
branch_labels = None
depends_on = None

GENESIS = "0" * 64

PG_GUARD = """
CREATE OR REPLACE FUNCTION medark_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "audit_trail",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(500)),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("institution", sa.String(200)),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("hash_alg", sa.String(20), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("prev_hash", sa.String(128), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_trail_at", "audit_trail", ["at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("chain", sa.String(32), nullable=False),
    )
    # the chain's id names its anchors in a repository (several catalogs may share one)
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS, "chain": uuid.uuid4().hex}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD)
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_trail_no_{verb.lower()} BEFORE {verb} ON "
                       "audit_trail FOR EACH ROW EXECUTE FUNCTION medark_audit_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_trail_no_{verb.lower()} BEFORE {verb} ON "
                       "audit_trail BEGIN SELECT RAISE(ABORT, 'audit records are "
                       "append-only'); END")


def downgrade() -> None:
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_trail_no_{verb}"
                   + (" ON audit_trail" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS medark_audit_append_only()")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_trail_at", "audit_trail")
    op.drop_table("audit_trail")
