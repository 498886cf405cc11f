"""Jobs the management server queues and follows: the institution, system and agent of a
job, who asked for it, its progress, a cancel request and the idempotency key of a job an
agent reports later; the events of each job (progress, log, status) in order; and the
server scheduler's runs of its periodic tasks.

The jobs table's slot constraint (plan, kind, scheduled_for, attempt) becomes two partial
unique indexes: one over this catalog's own jobs (institution NULL), as before, and one
that includes the institution, because two hospitals may both call a plan "his". A plain
unique index over the institution would not do: NULL never equals NULL, so a daemon's
slot would no longer be guarded.

server_task_runs: one row per (task, slot) a leader ran, unique, so a slot runs once even
if two server processes both believed themselves leader for a moment.

Revision ID: 0008_server_jobs
Revises: 0007_server_configs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_server_jobs"
down_revision = "0007_server_configs"
branch_labels = None
depends_on = None

LOCAL_JOB = sa.text("institution IS NULL")
SERVER_JOB = sa.text("institution IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("institution", sa.String(64)))
        batch.add_column(sa.Column("system", sa.String(200)))
        batch.add_column(sa.Column("agent", sa.String(64)))
        batch.add_column(sa.Column("requested_by", sa.String(200)))
        batch.add_column(sa.Column("progress", sa.JSON()))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("origin_key", sa.String(200)))
        batch.drop_constraint("uq_jobs_plan_kind_slot_attempt", type_="unique")
        batch.create_unique_constraint("uq_jobs_origin_key", ["origin_key"])
    op.create_index("uq_jobs_local_slot", "jobs", ["plan", "kind", "scheduled_for", "attempt"],
                    unique=True, sqlite_where=LOCAL_JOB, postgresql_where=LOCAL_JOB)
    op.create_index("uq_jobs_institution_slot", "jobs",
                    ["institution", "plan", "kind", "scheduled_for", "attempt"],
                    unique=True, sqlite_where=SERVER_JOB, postgresql_where=SERVER_JOB)
    op.create_index("ix_jobs_institution_status", "jobs", ["institution", "status", "id"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"])
    op.create_table(
        "server_task_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("leader_host", sa.String(255), nullable=False),
        sa.Column("leader_pid", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.UniqueConstraint("task", "slot", name="uq_server_task_runs_task_slot"),
    )


def downgrade() -> None:
    op.drop_table("server_task_runs")
    op.drop_index("ix_job_events_job", "job_events")
    op.drop_table("job_events")
    op.drop_index("ix_jobs_institution_status", "jobs")
    op.drop_index("uq_jobs_institution_slot", "jobs")
    op.drop_index("uq_jobs_local_slot", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_origin_key", type_="unique")
        batch.create_unique_constraint("uq_jobs_plan_kind_slot_attempt",
                                       ["plan", "kind", "scheduled_for", "attempt"])
        for column in ("origin_key", "cancel_requested", "progress", "requested_by", "agent",
                       "system", "institution"):
            batch.drop_column(column)
