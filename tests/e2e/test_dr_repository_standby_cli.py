"""A repository-fed standby (issue 15, `[dr.SYSTEM] feed = "repository"`): a standby at
the DR site fed only from the offsite repository (moto's S3 server), with no connection
to the primary at all.

The primary archives into a local repository (archive_command = `medark pg wal-push`);
a base backup and its WAL go offsite with `medark copy`; two standbys are made from the
offsite copy alone (`medark pg restore --standby --latest --start`: no primary_conninfo).
New commits reach them once archived and copied. Then the primary site is destroyed
(kill -9 of the primary, its repository deleted): a standby promoted then serves every
commit up to the last WAL that reached the offsite copy, and none after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import s3_server
from conftest import MEDARK, PASSWORD, TEST_KDF, Result
from dr_site import datadir_control, dr_nodes, preamble
from pg_server import (
    PgServer,
    archive_command,
    as_pg,
    can_run_servers,
    chown_pg,
    free_port,
    make_base,
    medark_for_postgres,
    pg_bin,
    wait_for,
)

from medark.config.loader import load_config
from medark.service.dr.repository_feed import (
    ArchivedPoint,
    newest_archived_lsn,
    wait_replayed_archive,
)
from medark.sources.postgres.replication import NodeState
from medark.sources.postgres.wal import parse_lsn

URL = s3_server.endpoint()
pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed"),
]

OFFSITE_PASSWORD = "offsite password"
REPLAY_TIMEOUT = 60.0
"""A repository-fed standby asks for the next segment every wal_retrieve_retry_interval
(5 s): one segment after `medark copy` takes a few seconds, never near this."""


@dataclass
class Standby:
    data: Path
    port: int
    restore: dict[str, object]

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"


@dataclass
class DrSite:
    base: Path
    primary: PgServer
    medark: str
    local: Path
    offsite: str
    local_password: Path
    offsite_password: Path
    cache: Path
    env: dict[str, str]
    standbys: dict[str, Standby] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    """Refs committed before the last WAL switch that was archived and copied offsite."""
    lost: list[str] = field(default_factory=list)
    """Refs committed after it: only ever in the dead primary's WAL."""
    last_switch: str = ""
    full_point: ArchivedPoint | None = None
    """The newest archived WAL after a segment filled up (no switch)."""
    full_state: NodeState | None = None
    """Standby a once wait_replayed_archive returned for `full_point`."""
    replay_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.base / "medark.toml"

    def medark_as_pg(self, *args: str) -> Result:
        """medark as the postgres OS user, which owns the local repository (as
        archive_command does)."""
        done = as_pg([*self.medark.split(), "--cache-dir", str(self.cache), *args],
                     env=self.env, timeout=300)
        if done.returncode != 0:
            raise AssertionError(f"medark {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}\nprimary log:\n{self.primary.log()}")
        return Result(done.returncode, done.stdout, done.stderr)

    def copy_offsite(self) -> dict[str, object]:
        done = self.medark_as_pg("--repo", self.offsite, "--password-file",
                                 str(self.offsite_password), "copy", "--from-repo",
                                 str(self.local), "--from-password-file",
                                 str(self.local_password), "--json")
        summary: dict[str, object] = done.json_lines()[-1]
        return summary

    def switch_and_wait(self) -> str:
        """Close the current segment and wait until archive_command has stored it."""
        segment = self.primary.sql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_for(lambda: self.primary.sql(
            "SELECT last_archived_wal FROM pg_stat_archiver") >= segment, 60,
            f"{segment} to be archived")
        return segment

    def commit(self, prefix: str, transactions: int) -> list[str]:
        refs = [f"{prefix}-{i}" for i in range(transactions)]
        for ref in refs:  # one transaction each
            self.primary.sql(f"INSERT INTO orders (ref) VALUES ('{ref}')")
        return refs

    def restore_standby(self, name: str) -> Standby:
        """`pg restore --standby` from the offsite repository alone, as root (which
        chowns the directory to postgres and starts the server as that user)."""
        target, port = Path(f"{self.base}-standby-{name}"), free_port()
        done = subprocess.run(
            [MEDARK, "--repo", self.offsite, "--password-file", str(self.offsite_password),
             "--cache-dir", str(self.base / "root-cache"), "pg", "restore",
             "--target-dir", str(target), "--standby", "--latest", "--start", "--port",
             str(port), "--medark-command", self.medark, "--json", "--timeout", "120"],
            env=self.env, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, done.stderr + _tail(target / "medark-recovery.log")
        standby = Standby(target, port, json.loads(done.stdout))
        self.standbys[name] = standby
        return standby


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def refs_on(server: PgServer, port: int) -> set[str]:
    found = server.sql("SELECT string_agg(ref, ',') FROM orders", port=port)
    return set(found.split(",")) if found else set()


def kill_9(data: Path) -> None:
    pid = int((data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="the postmaster")


@pytest.fixture(scope="module")
def site() -> Iterator[DrSite]:
    """Everything up to the destruction of the primary site: two standbys (a, b) fed
    from the offsite copy, commits that reached it, and commits that never did."""
    assert URL is not None
    base = make_base()
    primary: PgServer | None = None
    standbys: dict[str, Standby] = {}
    try:
        medark = medark_for_postgres(base)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        env.update(TEST_KDF)
        env.update(s3_server.CREDENTIALS)
        local, cache = base / "repo", base / "pgcache"
        local_password, offsite_password = base / "local-password", base / "offsite-password"
        local_password.write_text(PASSWORD + "\n")
        offsite_password.write_text(OFFSITE_PASSWORD + "\n")
        for owned in (local, cache):
            owned.mkdir()
        for path in (local, cache, local_password, offsite_password):
            path.chmod(0o700 if path.is_dir() else 0o600)
            chown_pg(path)
        bin_dir = pg_bin()
        assert bin_dir is not None
        command = archive_command(medark, local, local_password, cache)
        # autovacuum off: its ANALYZE of the 200,000-row insert commits a transaction of
        # its own, at a moment the load decides, and the failover counts every commit the
        # archive lacks (a loaded run counted 6 "lost" commits for the test's 5).
        primary = PgServer(base, free_port(), bin_dir, settings={
            "archive_mode": "on", "archive_timeout": "0", "autovacuum": "off",
            "archive_command": "'" + command.replace("'", "''") + "'"})
        site = DrSite(base, primary, medark, local, s3_server.new_location(URL),
                      local_password, offsite_password, cache, env, standbys)
        site.medark_as_pg("--repo", str(local), "--password-file", str(local_password),
                          "init")
        site.medark_as_pg("--repo", site.offsite, "--password-file", str(offsite_password),
                          "init")
        primary.init()
        primary.start()
        primary.sql("CREATE TABLE orders (id serial PRIMARY KEY, ref text UNIQUE NOT NULL, "
                    "at timestamptz NOT NULL DEFAULT now())")
        site.kept += site.commit("before-backup", 3)
        site.medark_as_pg("--repo", str(local), "--password-file", str(local_password),
                          "pg", "backup", "--dsn", primary.dsn)
        site.kept += site.commit("after-backup", 3)
        site.switch_and_wait()
        site.copy_offsite()
        for name in ("a", "b"):
            site.restore_standby(name)
        _write_config(site)

        # A commit reaches both standbys once its WAL is archived and copied offsite.
        round1 = site.commit("round1", 5)
        site.switch_and_wait()
        site.copy_offsite()
        copied = time.monotonic()
        for name, standby in site.standbys.items():
            wait_for(lambda s=standby: set(round1) <= refs_on(primary, s.port), 30,
                     f"round 1 on standby {name}")
            site.replay_seconds[f"round1_{name}"] = round(time.monotonic() - copied, 2)
        site.kept += round1

        # A segment closed because it is full, not by a switch: its last record goes on
        # in the next segment, which replay cannot reach until that one is archived.
        before = primary.sql("SELECT last_archived_wal FROM pg_stat_archiver")
        primary.sql("INSERT INTO orders (ref) SELECT 'bulk-' || g "
                    "FROM generate_series(1, 200000) g")
        wait_for(lambda: primary.sql("SELECT last_archived_wal FROM pg_stat_archiver")
                 > before, 60, "a full segment to be archived")
        site.copy_offsite()
        site.full_point = newest_archived_lsn(load_config(site.config), "offsite")
        assert site.full_point is not None
        started = time.monotonic()
        site.full_state = wait_replayed_archive(site.standbys["a"].dsn,
                                                site.full_point.end_lsn, REPLAY_TIMEOUT)
        site.replay_seconds["full_segment_a"] = round(time.monotonic() - started, 2)
        site.kept += ["bulk-1", "bulk-200000"]

        # The last WAL that ever leaves the primary site, then commits that never do.
        site.kept += site.commit("round2", 5)
        site.last_switch = site.switch_and_wait()
        site.copy_offsite()
        site.lost += site.commit("lost", 5)

        # The primary site is destroyed: the server dies, its repository is gone.
        kill_9(primary.data)
        shutil.rmtree(local)
        yield site
    finally:
        if primary is not None:
            primary.stop()
        for standby in standbys.values():
            assert primary is not None
            primary.stop(standby.data)
        subprocess.run(["pkill", "-f", "--", f"-D {base}"], check=False)
        if not os.environ.get("KEEP_PG"):
            for path in [base, *base.parent.glob(base.name + "*")]:
                shutil.rmtree(path, ignore_errors=True)


def _write_config(site: DrSite) -> None:
    """The plan file the DR commands and newest_archived_lsn read: the offsite repository
    at the DR site, and system `his` fed from it (primary: the primary that is about to
    die; standby: standby b)."""
    p, b = site.primary, site.standbys["b"]
    pg_ctl = p.tool("pg_ctl")
    site.config.write_text(preamble(p.dsn, repositories=f"""
[repositories.local]
site = "main"
url = "{site.local}"
password_file = "{site.local_password}"

[repositories.offsite]
site = "east"
url = "{site.offsite}"
password_file = "{site.offsite_password}"
""") + """
[dr.his]
feed = "repository"
repository = "offsite"
max_lag = "1h"
""" + dr_nodes("his", p.dsn, b.dsn, datadir_control(p.data, pg_ctl),
               datadir_control(b.data, pg_ctl)) + """
[[dr.his.health]]
type = "sql"
name = "writable"
query = "SELECT NOT pg_is_in_recovery()"
expect = "true"
""", encoding="utf-8")


def test_a_standby_fed_only_from_the_offsite_copy_serves_every_archived_commit(
        site: DrSite) -> None:
    a = site.standbys["a"]
    assert a.restore["standby"] is True and a.restore["started"] is True
    auto = (a.data / "postgresql.auto.conf").read_text()
    assert "primary_conninfo = ''" in auto and "archive_mode = 'on'" in auto
    assert "pg wal-push %p" in auto  # into the repository it replays, once promoted
    assert "pg wal-fetch" in str(a.restore["restore_command"])
    assert (a.data / "standby.signal").exists() and not (a.data / "recovery.signal").exists()
    print(f"standby ready after {a.restore['ready_seconds']} s; one new segment replayed "
          f"{site.replay_seconds} s after `medark copy` returned")

    # A full segment: replay reached it, perhaps short of its end (a record crossing
    # into the next segment), and the wait ended all the same.
    full, full_state = site.full_point, site.full_state
    assert full is not None and full_state is not None and full_state.replay_lsn is not None
    assert full.end_lsn - 16 * 1024 * 1024 <= full_state.replay_lsn <= full.end_lsn
    print(f"full segment {full.wal_name}: replay stopped "
          f"{full.end_lsn - full_state.replay_lsn} bytes short of its end")

    # What the offsite repository holds, and the standby replaying all of it.
    point = newest_archived_lsn(load_config(site.config), "offsite")
    assert point is not None and point.wal_name == site.last_switch, point
    assert point.gap_after is None and not point.streamed
    assert point.end_lsn % (16 * 1024 * 1024) == 0
    started = time.monotonic()
    state = wait_replayed_archive(a.dsn, point.end_lsn, REPLAY_TIMEOUT)
    print(f"replayed through {site.last_switch} {time.monotonic() - started:.2f} s after "
          "the primary site was destroyed")
    assert state.replay_lsn is not None and state.replay_lsn >= point.end_lsn - 16 * 1024 * 1024
    assert state.receive_lsn is None  # no WAL receiver: the repository is the only feed

    # Promoted, it serves every commit up to the last archived WAL, and none after it.
    primary = site.primary
    assert primary.sql("SELECT pg_promote()", port=a.port) == "t"
    wait_for(lambda: primary.sql("SELECT pg_is_in_recovery()", port=a.port) == "f", 30,
             "the promotion")
    found = refs_on(primary, a.port)
    assert set(site.kept) <= found, sorted(set(site.kept) - found)
    assert not found & set(site.lost), sorted(found & set(site.lost))
    # promoted, it archives its new timeline into the offsite copy it replayed from
    assert primary.sql("SHOW archive_mode", port=a.port) == "on"
    wait_for(lambda: primary.sql("SELECT last_archived_wal FROM pg_stat_archiver",
                                 port=a.port).startswith("00000002"), 60,
             "the new timeline archived")
    assert primary.sql("SELECT failed_count FROM pg_stat_archiver", port=a.port) == "0"
    primary.sql("INSERT INTO orders (ref) VALUES ('after-promotion')", port=a.port)
    assert parse_lsn(primary.sql("SELECT pg_current_wal_lsn()", port=a.port)) > point.end_lsn


def test_a_drill_needs_only_the_repository_fed_standby(site: DrSite) -> None:
    """The primary site is gone already: a drill clones standby b into a sandbox, checks
    it, tears it down, and b goes on replaying the repository, still in recovery."""
    b = site.standbys["b"]
    done = subprocess.run(
        [MEDARK, "dr", "drill", "his", "--json", "--config", str(site.config), "--catalog",
         f"sqlite:///{site.base / 'catalog.db'}"], env=site.env, capture_output=True,
        text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded" and doc["switch_seconds"] > 0, doc
    assert "replaying repository offsite" in doc["steps"][0]["detail"], doc["steps"][0]
    assert site.primary.sql("SELECT pg_is_in_recovery()", port=b.port) == "t"


def test_dr_failover_promotes_the_repository_fed_standby(site: DrSite) -> None:
    """`medark dr failover` with `feed = "repository"`: it promotes standby b, which serves
    every commit the offsite copy received."""
    b = site.standbys["b"]
    catalog = f"sqlite:///{site.base / 'catalog.db'}"
    shown = subprocess.run(
        [MEDARK, "dr", "status", "his", "--config", str(site.config), "--catalog", catalog],
        env=site.env, capture_output=True, text=True, check=False, timeout=120)
    said = " ".join(shown.stdout.split())
    assert shown.returncode == 20, shown.stdout + shown.stderr  # the primary is gone
    assert "replication: the standby replays the repository" in said, said
    assert "repository offsite: newest WAL" in said and "the standby replayed" in said, said
    done = subprocess.run(
        [MEDARK, "dr", "failover", "his", "--yes", "--json", "--config", str(site.config),
         "--catalog", catalog], env=site.env, capture_output=True, text=True, check=False,
        timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    # the dead primary's data directory is still on this host: its WAL says exactly
    # which commits never reached the repository
    assert doc["data_loss"]["commits"] == len(site.lost), doc["data_loss"]
    assert doc["data_loss"]["archive_end_lsn"] is not None, doc["data_loss"]
    assert doc["status"] == "succeeded", doc
    primary = site.primary
    assert primary.sql("SELECT pg_is_in_recovery()", port=b.port) == "f"
    found = refs_on(primary, b.port)
    assert set(site.kept) <= found, sorted(set(site.kept) - found)
    assert not found & set(site.lost), sorted(found & set(site.lost))
