"""How clients reach the new primary after a switch: `[dr.SYSTEM.client_switch]`.

A switch calls `hold` before it fences the old primary (pgbouncer PAUSE: new requests
wait in the pooler instead of failing), `redirect` once the standby is promoted, and
`release` last (RESUME). A switch that rolls back calls `release` alone, so the held
requests go on to the old primary, unfenced again. HAProxy and hooks hold nothing: their
clients see the old primary refuse writes for the moment of the switch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from medark.config.dr import ClientSwitch
from medark.errors import DatabaseUnavailable, MedarkError, UsageError
from medark.service.dr.apps import hook_env, run_command
from medark.service.dr.nodes import Member, one_line

if TYPE_CHECKING:
    from medark.sources.postgres.pooler import PoolerConsole

HOOK_TIMEOUT = 60.0
HOLD_PATIENCE = 5.0
"""Seconds PAUSE may wait for in-flight transactions before the stuck ones are ended."""
STUCK_GRACE = 30.0


class ClientSwitcher:
    """The client switch of one system for one action (a console kept open throughout)."""

    def __init__(self, system: str, conf: ClientSwitch | None) -> None:
        self.system = system
        self.conf = conf
        self._console: PoolerConsole | None = None
        self.held = False

    def __enter__(self) -> ClientSwitcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def kind(self) -> str:
        return "none" if self.conf is None else self.conf.type

    def preflight(self) -> str:
        """Refuse now what would fail in the middle of the switch; what was checked."""
        conf = self.conf
        if conf is None:
            return "no client switch configured: the services redirect their clients"
        if conf.type == "pgbouncer":
            if conf.ini is None or conf.admin_dsn is None:
                raise UsageError(f"dr {self.system}: a pgbouncer client switch needs both ini "
                                 "(to point the database elsewhere) and admin_dsn (to hold "
                                 "and reload)")
            from medark.sources.postgres.pooler import repoint_ini

            try:
                text = Path(conf.ini).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read pgbouncer ini {conf.ini}: "
                                 f"{exc.strerror or exc}") from None
            repoint_ini(text, str(conf.database), "localhost", 5432)  # has the entry?
            entry = self.console().state().database(str(conf.database))
            if entry is None:
                raise UsageError(f"pgbouncer has no database {conf.database!r}")
            return f"pgbouncer {conf.database} -> {entry.host}:{entry.port}"
        if conf.type == "haproxy":
            from medark.sources.haproxy import HaproxyRuntime

            runtime = HaproxyRuntime(str(conf.socket))
            for server in (conf.primary_server, conf.standby_server):
                runtime.server_state(str(conf.backend), str(server))
            return f"haproxy {conf.backend}: {conf.primary_server}, {conf.standby_server}"
        return f"hook {conf.command}"

    def preflight_noted(self) -> str:
        """`preflight` for a failover: the pooler may have gone with the primary site, so
        what is wrong is said, not raised (the redirect step will fail if it stays so)."""
        try:
            return self.preflight()
        except MedarkError as exc:
            return f"client switch: {one_line(exc)}"

    def hold_if_possible(self, patience: float = HOLD_PATIENCE) -> str:
        """`hold` for a failover: not holding is said, and the failover goes on."""
        try:
            return self.hold(patience=patience)
        except MedarkError as exc:
            return f"not held: {one_line(exc)}"

    def console(self) -> PoolerConsole:
        if self._console is None:
            from medark.sources.postgres.pooler import PoolerConsole

            assert self.conf is not None and self.conf.admin_dsn is not None
            self._console = PoolerConsole(self.conf.admin_dsn)
        return self._console

    def hold(self, stuck: Callable[[], str] | None = None,
             patience: float = HOLD_PATIENCE) -> str:
        """pgbouncer: PAUSE the database. PAUSE returns once every in-flight transaction
        has ended, so one left open (an idle-in-transaction session) would hold the
        switch for ever: after `patience` seconds `stuck()` ends those transactions on
        the server (their clients get an error, as without a pooler) and says what it
        did; PAUSE then completes."""
        if self.conf is None or self.conf.type != "pgbouncer":
            return f"nothing to hold ({self.kind})"
        console, db = self.console(), str(self.conf.database)
        failure: list[BaseException] = []

        def pause() -> None:
            try:
                console.pause(db)
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=pause, name="pgbouncer-pause", daemon=True)
        worker.start()
        worker.join(patience)
        said = ""
        if worker.is_alive() and stuck is not None:
            said = "; " + stuck()
            worker.join(STUCK_GRACE)
        if worker.is_alive():
            self._abandon_console()
            self.held = True  # it may still pause: close() resumes on a new console
            waited = patience + (STUCK_GRACE if stuck is not None else 0.0)
            raise DatabaseUnavailable(f"pgbouncer {db}: PAUSE did not complete within "
                                      f"{waited:g} s (a transaction stays open)")
        self.held = True  # even a failed PAUSE may have paused: close() resumes
        if failure:
            raise failure[0]
        return f"pgbouncer {db} paused{said}"

    def redirect(self, new: Member, old: Member) -> str:
        """Point the clients at `new` (the promoted standby)."""
        conf = self.conf
        host, port = new.host_port
        if conf is None:
            return "no client switch configured"
        if conf.type == "pgbouncer":
            from medark.sources.postgres.pooler import repoint

            repoint(self.console(), Path(str(conf.ini)), str(conf.database), host, port)
            return f"pgbouncer {conf.database} -> {host}:{port}"
        if conf.type == "haproxy":
            from medark.sources.haproxy import HaproxyRuntime, switch_to

            servers = {"primary": conf.primary_server, "standby": conf.standby_server}
            switch_to(HaproxyRuntime(str(conf.socket)), str(conf.backend),
                      str(servers[new.configured]), str(servers[old.configured]))
            return f"haproxy {conf.backend} -> {servers[new.configured]}"
        run_command(str(conf.command), hook_env(self.system, "NEW_PRIMARY", host, port),
                    HOOK_TIMEOUT, "client switch hook")
        return f"hook moved clients to {host}:{port}"

    def release(self) -> str:
        """RESUME what `hold` paused (also on a rollback: the requests go on)."""
        if not self.held or self.conf is None:
            return "nothing held"
        self.console().resume(str(self.conf.database))
        self.held = False
        return f"pgbouncer {self.conf.database} resumed"

    def _abandon_console(self) -> None:
        """The console is blocked in a PAUSE that does not return: later commands go
        through a new one; the old connection is closed in the background."""
        stale, self._console = self._console, None
        if stale is not None:
            threading.Thread(target=stale.close, name="pgbouncer-close", daemon=True).start()

    def close(self) -> None:
        """Never leave the pooler paused: a failed action resumes it on the way out."""
        try:
            if self.held:
                self.release()
        except MedarkError:
            pass
        finally:
            if self._console is not None:
                self._console.close()
                self._console = None
