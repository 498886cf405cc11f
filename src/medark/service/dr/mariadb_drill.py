"""`dr drill` of a MariaDB system: drill.py's steps, with the copy taken by
sources/mysql/sandbox.py (mariadb-backup from the standby, which keeps replicating, or
keeps being fed from the repository) and the sql health checks run on the copy through
mariadb_nodes (the copy as the node).

Production is not touched: the primary is only read (the roles, the lag), the standby is
copied hot (its replication threads are never stopped), and the copy replicates from
nobody and writes no binary log. mariadb-backup reads the standby's data files, so the
drill runs on the standby's host.
"""

from __future__ import annotations

from dataclasses import dataclass

from medark.config.dr import Health
from medark.errors import MedarkError, StandbyNotReady
from medark.service.dr import apps
from medark.service.dr.drill import CLONE_TIMEOUT, Drill, drill_dir
from medark.service.dr.health import HealthResult
from medark.service.dr.mariadb_nodes import Maria, find_pair, follows, members, wait_healthy
from medark.service.dr.nodes import Member, one_line
from medark.sources.mysql.replication import describe_threads


@dataclass
class MariaDrill(Drill):
    standby: Maria | None = None
    replicating: bool = True
    """The standby has a replication connection (clone_standby checks it)."""

    def _preflight(self) -> Member:
        from medark.sources.mysql.replication import replication_lag

        with self.steps.step("preflight") as note:
            primary, standby = find_pair(self.system, self.conf)
            if not standby.st.streaming:
                raise StandbyNotReady(f"{self.system}: the standby {standby.address} is not "
                                      f"replicating (threads {describe_threads(standby.st)})")
            if not follows(standby, primary):
                raise StandbyNotReady(
                    f"{self.system}: the standby {standby.address} replicates from "
                    f"{standby.st.master_host}:{standby.st.master_port}, not from the "
                    f"primary {primary.address}")
            said = [f"standby {standby.address} (site {standby.node.site}) replicates from "
                    f"{primary.address}"]
            try:
                lag = replication_lag(primary.node.dsn, standby.node.dsn, primary.password,
                                      standby.password)
                said.append(f"{lag.transactions} transaction(s) behind")
            except MedarkError as exc:  # the copy is of the standby; the lag is a note
                said.append(f"lag unknown ({one_line(exc)})")
            said.append("production is not changed")
            note.detail = "; ".join(said)
        self.standby = standby
        return standby.member()

    def _clone(self, standby: Member) -> None:
        from medark.sources.mysql.sandbox import clone_standby

        assert self.standby is not None
        with self.steps.step("clone standby") as note:
            sandbox = clone_standby(standby.dsn, self.standby.password, drill_dir(),
                                    CLONE_TIMEOUT, replicating=self.replicating)
            self.sandbox = sandbox
            note.detail = (f"mariadb-backup of {standby.address} writable at 127.0.0.1:"
                           f"{sandbox.port} in {sandbox.ready_seconds:.1f} s "
                           f"({sandbox.base}; replicates from nobody, no binary log)")
        self.env = {**apps.hook_env(self.system, "NEW_PRIMARY", "127.0.0.1", sandbox.port),
                    "MEDARK_DR_DRILL": "1"}

    def _node(self) -> Maria:
        """The copy as a MariaDB node: the standby's account and password at its port."""
        assert self.standby is not None and self.sandbox is not None
        node = self.standby.node.model_copy(update={"dsn": self.sandbox.dsn})
        return Maria("sandbox", node, self.standby.password, None)

    def _wait(self, checks: list[Health]) -> list[HealthResult]:
        return wait_healthy(checks, self._node())

    def _destroy(self, standby: Member) -> None:
        from medark.sources.mysql.sandbox import MariaSandbox, destroy

        assert isinstance(self.sandbox, MariaSandbox)
        destroy(self.sandbox)


@dataclass
class RepositoryDrill(MariaDrill):
    """A standby fed from the repository (mariadb_repository.py): the read-only node that
    does not replicate, copied the same way. The primary is not needed (the DR site may
    have no path to it); the copy holds what the standby had applied, and the standby's
    position (its own binlog) and the repository are only read."""

    replicating: bool = False

    def _preflight(self) -> Member:
        from medark.service.dr.mariadb_repository import repository_pair

        with self.steps.step("preflight") as note:
            nodes = members(self.conf)
            _primary, standby = repository_pair(nodes)
            if standby is None:
                raise StandbyNotReady(f"{self.system}: no read-only standby fed from the "
                                      "repository (" + ", ".join(m.describe() for m in nodes)
                                      + ")")
            note.detail = (f"standby {standby.address} (site {standby.node.site}) fed from "
                           f"repository {self.conf.repository}, at GTID "
                           f"{standby.st.gtid_binlog_pos or 'none'}; production is not "
                           "changed")
        self.standby = standby
        return standby.member()
