"""A throwaway PostgreSQL primary and streaming standby for DR tests.

The primary has wal_level=replica and wal_log_hints=on (pg_rewind needs hint-bit changes
in WAL, and these clusters have no data checksums) and a physical slot; the standby is a
pg_basebackup -R of it that streams through that slot. Both run on free ports as the
postgres OS user (tests/pg_server.py) and are stopped and removed on `close()`, whatever
state a test left them in (promoted, fenced, stopped, swapped roles).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from pg_server import PgServer, as_pg, chown_pg, free_port, make_base, pg_bin, wait_for

SLOT = "medark_standby"


@dataclass
class PgPair:
    """`primary` and `standby` are the servers as built; after a switch the test itself
    knows which one is which (the objects do not move)."""

    primary: PgServer
    standby: PgServer
    slot: str = SLOT

    def close(self) -> None:
        """Stop both servers and remove their directories, ignoring what already failed."""
        for server in (self.primary, self.standby):
            with suppress(Exception):  # teardown must reach the rmtree below
                server.stop()
            shutil.rmtree(server.base, ignore_errors=True)


def build_pair(slot: str = SLOT, settings: dict[str, str] | None = None) -> PgPair:
    """Start a primary, base-backup it into a standby that streams through `slot`, and wait
    until the primary sees it streaming. On any failure everything started is torn down."""
    bin_dir = pg_bin()
    assert bin_dir is not None, "PostgreSQL server programs are not installed"
    primary = PgServer(make_base(), free_port(), bin_dir, settings={
        "wal_log_hints": "on", "hot_standby": "on", "wal_keep_size": "'64MB'",
        "wal_receiver_status_interval": "1s", **(settings or {})})
    standby = PgServer(make_base(), free_port(), bin_dir)
    pair = PgPair(primary, standby, slot)
    try:
        primary.init()
        primary.start()
        primary.sql(f"SELECT pg_create_physical_replication_slot('{slot}')")
        standby.data.mkdir(mode=0o700)
        chown_pg(standby.data)
        done = as_pg([standby.tool("pg_basebackup"), "-h", "127.0.0.1", "-p",
                      str(primary.port), "-U", "postgres", "-D", str(standby.data), "-R",
                      "-S", slot, "-X", "stream", "-c", "fast", "--no-sync"])
        if done.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {done.stderr[-500:]}")
        # The copy carries the primary's postgresql.auto.conf; later lines win.
        with open(standby.data / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(f"port = {standby.port}\n"
                    f"unix_socket_directories = '{standby.base}'\n")
        standby.start()
        wait_for(lambda: primary.sql(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1",
            timeout=60, what="the standby to stream", detail=standby.log)
    except BaseException:
        pair.close()
        raise
    return pair


@contextmanager
def pg_pair(slot: str = SLOT, settings: dict[str, str] | None = None) -> Iterator[PgPair]:
    """For fixtures: `with pg_pair() as pair: yield pair`."""
    pair = build_pair(slot, settings)
    try:
        yield pair
    finally:
        pair.close()
