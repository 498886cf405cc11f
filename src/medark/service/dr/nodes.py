"""The two database servers of a DR system as they are now, not as the file names them.

After a switch-over the configured `primary` is the standby and the other way round; the
file is not rewritten. Every action therefore finds the roles by asking both servers,
and talks of "the primary" and "the standby" as found. Passwords come from each node's
`password_file` and stay in memory (in the DSN handed to libpq), never in argv or a
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medark.config.dr import DrConf, Node
from medark.errors import MedarkError, UsageError

if TYPE_CHECKING:
    from medark.sources.postgres.replication import NodeState


@dataclass(frozen=True)
class Member:
    """A configured node with its live state (`state` None: unreachable, `error` says why)."""

    configured: str
    """`primary` or `standby`: the table of the file that describes it."""
    node: Node
    dsn: str
    """The DSN with the password from password_file."""
    address: str
    state: NodeState | None
    error: str | None = None

    @property
    def role(self) -> str | None:
        return None if self.state is None else self.state.role

    @property
    def pg(self) -> NodeState:
        """The state of a reachable node (callers check `role` first)."""
        assert self.state is not None, f"{self.address} was not reached"
        return self.state

    @property
    def host_port(self) -> tuple[str, int]:
        address = self.node.address()
        return address if address is not None else ("localhost", 5432)

    @property
    def datadir(self) -> Path | None:
        """The data directory when Medark controls the server through it (pg_ctl)."""
        control = self.node.control
        return Path(control.datadir) if control.datadir and control.pg_ctl else None

    @property
    def bin_dir(self) -> str | None:
        control = self.node.control
        return str(Path(control.pg_ctl).parent) if control.pg_ctl else None


def node_dsn(node: Node) -> str:
    """The node's DSN with its password_file's first line as the password."""
    if node.password_file is None:
        return node.dsn
    from psycopg import conninfo

    try:
        lines = Path(node.password_file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read password_file {node.password_file}: "
                         f"{exc.strerror or exc}") from None
    return conninfo.make_conninfo(node.dsn, password=lines[0] if lines else "")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def member(configured: str, node: Node, connect_timeout: int | None = None) -> Member:
    """Ask one PostgreSQL node what it is; unreachable is a finding, not an error."""
    from medark.sources.postgres.replication import node_state
    from medark.sources.postgres.server import Dsn

    address = Dsn.parse(node.dsn).safe()
    dsn = node_dsn(node)
    probe = dsn
    if connect_timeout is not None:
        from psycopg import conninfo

        probe = conninfo.make_conninfo(dsn, connect_timeout=str(connect_timeout))
    try:
        state = node_state(probe)
    except MedarkError as exc:
        return Member(configured, node, dsn, address, None, one_line(exc))
    return Member(configured, node, dsn, address, state)


def members(conf: DrConf, connect_timeout: int | None = None) -> tuple[Member, Member]:
    """Both configured nodes, the file's primary first."""
    return (member("primary", conf.primary, connect_timeout),
            member("standby", conf.standby, connect_timeout))
