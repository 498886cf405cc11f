"""Reply of the restore wizard's read endpoint (routes/recovery.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Literal

from pydantic import Field, field_validator

from medark.server.schemas import Reply, Strict
from medark.server.schemas_grants import SnapshotView
from medark.util import clock


class WindowReport(Strict):
    """A recoverable window as an agent's heartbeat reports it (agent/windows.py)."""

    kind: Literal["wal", "binlog"]
    source: str = Field(min_length=1, max_length=100)
    cluster: str = Field(min_length=1, max_length=100)
    """The cluster's system id / the server's archive id (the agent's own business)."""
    start: str = Field(max_length=40)
    end: str = Field(max_length=40)
    base: str = Field(pattern="^[0-9a-f]{8,64}$")
    """The full id of the base backup the window starts from."""
    gap_after: bool

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        return clock.format_time(clock.parse_time(value))


class Window(Reply):
    kind: str
    """`wal` or `binlog`."""
    start: str
    end: str
    """Any second in [start, end] can be restored to (ISO-8601, UTC)."""
    plan: str
    source: str
    """The database source: its type (`postgres`, `mariadb`), or `TYPE:CLUSTER` when the
    system has several of one type."""
    base: str
    """The base backup the window starts from (short id)."""
    gap_after: bool
    """The window ends at a gap in the archive (not at the newest archived log)."""
    agent: str
    reported_at: str


class AgentTargets(Reply):
    agent: str
    state: str
    targets: list[str]
    """The names of the agent's `[agent] restore_targets`, as its last heartbeat said."""


class RecoveryReply(Reply):
    institution: str
    system: str
    grant: int | None
    plans: list[str]
    source_types: list[str]
    database: bool
    """A postgres or mariadb source."""
    log_streamed: bool
    """Its WAL or binlog is captured continuously (`stream = true`)."""
    windows_known: bool
    """Whether an agent with a plan of the system has reported its windows (the server
    itself does not read WAL or binlog archives)."""
    windows: list[Window]
    """Oldest first; with a grant for some snapshots, those starting from them."""
    points: list[SnapshotView]
    """The system's snapshots, oldest first (with a grant for some, only those)."""
    agents: list[AgentTargets]
