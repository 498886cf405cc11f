"""A job's states, apart from the tables: `medark jobs --help` offers them without
importing SQLAlchemy."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
"""Ended at someone's request: a queued job before it started, or a running one whose
agent stopped at the cancel (the management server's jobs, catalog/job_queue.py)."""
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ENDED = (SUCCEEDED, FAILED, CANCELLED)
"""The final states: a job that reached one is over (only its agent's late report of
how it really ended may still replace a failure the server assumed)."""

DR_KINDS = ("switchover", "failover", "failback", "drill")
"""What a DR action does (catalog `dr_actions.kind`)."""
ROLLED_BACK = "rolled_back"
DR_STATUSES = (RUNNING, SUCCEEDED, FAILED, ROLLED_BACK)
"""A DR action's states: running (the system's claim), then how it ended; rolled_back:
a failure before promotion returned the roles to where they were."""
