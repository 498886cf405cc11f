"""Request and response bodies of the restore and DR endpoints (routes/remote_ops.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any, Literal

from pydantic import Field

from medark.config.agent_conf import MAX_PATHS
from medark.server.schemas import Reply, Strict


class DicomItem(Strict):
    """A study to restore by the snapshot's DICOM catalog, or only these series of it."""

    study: str = Field(min_length=1, max_length=64)
    """Its Study Instance UID."""
    series: list[str] = Field(default_factory=list, max_length=MAX_PATHS)
    """Series Instance UIDs of the study (none: the whole study)."""


class RestoreRequest(Strict):
    """A snapshot (or `paths` of it), or a database at a point in time (`time`, `plan`,
    `source`), into a restore target: exactly one of `snapshot` and `time`."""

    snapshot: str | None = Field(default=None, pattern="^(latest|[0-9a-f]{8,64})$")
    """A snapshot id (a unique prefix of 8 or more hex digits) or `latest`. Exactly one
    of `snapshot` and `time` (checked after the caller's rights, like the target's
    name: 422 `invalid_restore`)."""
    paths: list[str] = Field(default_factory=list, max_length=MAX_PATHS)
    """Absolute paths inside the snapshot to restore (none: all of it); no '..'."""
    dicom: list[DicomItem] = Field(default_factory=list, max_length=MAX_PATHS)
    """Instead of paths: studies (or series of them) found in the snapshot's DICOM
    catalog (GET …/snapshots/ID/dicom); the agent restores each with `medark dicom
    restore`, full paths kept below the target."""
    time: str | None = Field(default=None, min_length=1, max_length=40,
                             json_schema_extra={"format": "date-time"})
    """A point in time (ISO-8601; without a zone, UTC) inside a window the recovery
    endpoint lists: the database restored as it was then, into a new directory."""
    plan: str | None = Field(default=None, min_length=1, max_length=200)
    """With `time`: the plan whose window it is."""
    source: str | None = Field(default=None, min_length=1, max_length=100)
    """With `time`: the database source (as the window names it); optional when the
    plan has one."""
    target: str = Field(min_length=1, max_length=64)
    """The name of a restore target of the agent's `[agent] restore_targets`."""


class DrRequest(Strict):
    action: Literal["switchover", "failover", "failback", "drill"]
    confirm: str | None = Field(default=None, max_length=64)
    """switchover, failover and failback: the system's name typed again."""


class DrAgentStatus(Reply):
    agent: str
    state: str
    dr_systems: list[str]
    reported_at: str | None
    systems: list[dict[str, Any]]
    """`medark dr status --json`'s systems as the agent last reported them."""


class DrStatusReply(Reply):
    institution: str
    agents: list[DrAgentStatus]
