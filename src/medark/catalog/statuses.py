"""A job's states, apart from the tables: `medark jobs --help` offers them without
importing SQLAlchemy."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)

DR_KINDS = ("switchover", "failover", "failback", "drill")
"""What a DR action does (catalog `dr_actions.kind`)."""
ROLLED_BACK = "rolled_back"
DR_STATUSES = (RUNNING, SUCCEEDED, FAILED, ROLLED_BACK)
"""A DR action's states: running (the system's claim), then how it ended; rolled_back:
a failure before promotion returned the roles to where they were."""
