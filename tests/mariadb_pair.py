"""A throwaway MariaDB primary and GTID replica for DR tests.

Both are tests/mysql_server.py servers (mariadbd as the mysql OS user, free ports on
127.0.0.1), started with what a switch needs on both sides: binary logging, a unique
server_id, gtid_strict_mode, ROW format and log_slave_updates (a promoted replica's own
binlog must hold every transaction, or the old primary cannot follow it by GTID). The
replica replicates from the primary with MASTER_USE_GTID=slave_pos as REPL_USER, and is
read-only. An application account without READ ONLY ADMIN (APP_USER) exists on both.
`close()` stops and removes both, whatever state a test left them in.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from mysql_server import (
    BACKUP_PASSWORD,
    BACKUP_USER,
    MY_USER,
    MariaServer,
    _which,
    free_port,
    make_base,
    sql,
)

REPL_USER = "repl"
REPL_PASSWORD = "Repl-Hosp1tal-pw"
APP_USER = "his_app"
APP_PASSWORD = "App-Hosp1tal-pw"


@dataclass
class ReplServer(MariaServer):
    """A MariaServer started with its own server_id and the replication options.

    MariaServer.start has no hook for extra options and log_slave_updates is not
    dynamic, hence this start; the rest (init, root_sql, stop, log) is reused."""

    server_id: int = 1

    def start(self) -> None:
        entry = pwd.getpwnam(MY_USER)
        argv = [_which("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={self.data}",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
                f"--log-bin={self.base / 'binlog'}", f"--server-id={self.server_id}",
                "--binlog-format=ROW", "--gtid-strict-mode=1", "--log-slave-updates=1",
                f"--log-error={self.base / 'error.log'}", f"--pid-file={self.base / 'pid'}",
                "--skip-name-resolve", "--skip-slave-start",
                "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"]
        self.proc = subprocess.Popen(argv, user=entry.pw_uid, group=entry.pw_gid,
                                     extra_groups=[], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, TZ="UTC"), cwd=str(self.base))
        wait_for(self._answers, 60, "mariadbd to start", self.log)
        self.root_sql("DROP USER IF EXISTS ''@'localhost'")

    def _answers(self) -> bool:
        done = subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}",
                               "ping"], capture_output=True, check=False)
        if done.returncode != 0 and self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {self.log()}")
        return done.returncode == 0

    @property
    def admin_dsn(self) -> str:
        """The DR account (ALL PRIVILEGES, so READ ONLY ADMIN too); its password is
        BACKUP_PASSWORD, passed separately."""
        return f"mysql://{BACKUP_USER}@127.0.0.1:{self.port}/"

    def app_sql(self, query: str) -> str:
        """One statement as the application account (read_only applies to it)."""
        done = subprocess.run(["mariadb", "--no-defaults", "--protocol=TCP",
                               "--host=127.0.0.1", f"--port={self.port}", f"--user={APP_USER}",
                               "--batch", "--skip-column-names", "-e", query],
                              capture_output=True, text=True, check=False, timeout=60,
                              env=dict(os.environ, MYSQL_PWD=APP_PASSWORD))
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        return done.stdout.strip()

    def value(self, expr: str) -> str:
        return sql(f"SELECT {expr}", socket_path=self.socket)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        time.sleep(0.1)


def point_at(replica: ReplServer, primary: ReplServer) -> None:
    replica.root_sql(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
        f"MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', "
        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE")


@dataclass
class MariaPair:
    """`primary` and `replica` as built; after a switch the test knows which is which."""

    primary: ReplServer
    replica: ReplServer

    def caught_up(self) -> bool:
        return (self.replica.value("@@gtid_slave_pos")
                == self.primary.value("@@gtid_binlog_pos"))

    def close(self) -> None:
        for server in (self.primary, self.replica):
            with suppress(Exception):  # teardown must reach the rmtree below
                server.stop()
            shutil.rmtree(server.base, ignore_errors=True)


def build_pair() -> MariaPair:
    primary = ReplServer(make_base(), free_port(), server_id=1)
    replica = ReplServer(make_base(), free_port(), server_id=2)
    pair = MariaPair(primary, replica)
    try:
        for server in (primary, replica):
            server.init()
            server.start()
        # The replica starts empty and takes every account from the primary's binlog.
        replica.root_sql("RESET MASTER; SET GLOBAL gtid_slave_pos = ''")
        primary.root_sql(
            f"CREATE USER '{BACKUP_USER}'@'%' IDENTIFIED BY '{BACKUP_PASSWORD}'; "
            f"GRANT ALL ON *.* TO '{BACKUP_USER}'@'%' WITH GRANT OPTION; "
            f"CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'; "
            f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'; "
            f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; "
            "CREATE DATABASE his; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON his.* TO '{APP_USER}'@'%'; "
            "CREATE TABLE his.visits (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT)")
        point_at(replica, primary)
        replica.root_sql("SET GLOBAL read_only = 1")
        wait_for(pair.caught_up, 60, "the replica to catch up", replica.log)
    except BaseException:
        pair.close()
        raise
    return pair


@contextmanager
def mariadb_pair() -> Iterator[MariaPair]:
    """For fixtures: `with mariadb_pair() as pair: yield pair`."""
    pair = build_pair()
    try:
        yield pair
    finally:
        pair.close()
