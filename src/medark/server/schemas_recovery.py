"""Reply of the restore wizard's read endpoint (routes/recovery.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from medark.server.schemas import Reply
from medark.server.schemas_grants import SnapshotView


class Window(Reply):
    kind: str
    """`wal` or `binlog`."""
    start: str
    end: str


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
    """Whether `windows` is what the server knows of continuous capture (not yet: the
    server does not read WAL or binlog archives)."""
    windows: list[Window]
    points: list[SnapshotView]
    """The system's snapshots, oldest first (with a grant for some, only those)."""
    agents: list[AgentTargets]
