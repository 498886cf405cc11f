#!/usr/bin/env python3
"""Benchmark Medark's PostgreSQL protection against pgBackRest and pg_basebackup, side by
side on one throwaway server (run as root; servers and pgBackRest run as `postgres`).

  1. pgbench -i -s SCALE (scale 100 is about 1.5 GB); WAL archived by one archive_command
     that runs `medark pg wal-push %p` and then `pgbackrest archive-push %p`
  2. base backup under a pgbench write load: Medark (`pg backup`), pgBackRest (full,
     --process-max 2, zstd level 3, AES-256 repository encryption), pg_basebackup to a
     plain directory (-X fetch): time and stored size
  3. a second base backup with no load (the database unchanged): data Medark adds
  4. point-in-time restore to a moment after the backups, until the server accepts
     connections: `medark pg restore --time T --start` vs `pgbackrest restore --type=time`
     plus pg_ctl start and waiting for recovery to end
  5. RPO under pgbench load: `medark pg wal-stream` reports (with --json -v) each WAL
     position it made durable; a probe commits a row every 0.25 s and records its commit
     LSN; the RPO sample is the time from commit to the first report covering it. For
     archive_command (segment-bound, as for pgBackRest) the sample is commit → the
     segment appearing in pg_stat_archiver.

Prints a table and writes bench/out/pg-results-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from pg_server import (  # noqa: E402
    PgServer,
    as_pg,
    chown_pg,
    free_port,
    make_base,
    medark_for_postgres,
    pg_bin,
    wait_for,
)
from run_bench import ensure_bytecode  # noqa: E402

PASSWORD = "medark-bench-password-not-a-secret"


def log(text: str) -> None:
    print(text, flush=True)


def du(path: Path) -> int:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def timed(argv: list[str], as_postgres: bool = False, env: dict[str, str] | None = None,
          ) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    if as_postgres:
        done = as_pg(argv, env=env)
    else:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}")
    return seconds, done


class Bench:
    def __init__(self, scale: int, load_seconds: int) -> None:
        self.scale = scale
        self.load_seconds = load_seconds
        self.base = make_base()
        self.medark = medark_for_postgres(self.base)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        self.pwfile = self.base / "repo-password"
        self.pwfile.write_text(PASSWORD + "\n")
        self.pwfile.chmod(0o600)
        self.repo, self.cache, self.pgbr = (self.base / "medark-repo", self.base / "cache",
                                            self.base / "pgbackrest")
        for d in (self.repo, self.cache, self.pgbr, self.pgbr / "log", self.pgbr / "lock"):
            d.mkdir()
        chown_pg(self.base)
        bin_dir = pg_bin()
        assert bin_dir is not None
        self.conf = self.base / "pgbackrest.conf"
        port = free_port()
        self.conf.write_text(
            "[global]\n"
            f"repo1-path={self.pgbr}\nrepo1-retention-full=10\n"
            "repo1-cipher-type=aes-256-cbc\n"
            f"repo1-cipher-pass={PASSWORD}\n"
            f"log-path={self.pgbr / 'log'}\nlock-path={self.pgbr / 'lock'}\n"
            "compress-type=zst\ncompress-level=3\nprocess-max=2\nstart-fast=y\n"
            "log-level-console=warn\n"
            "[bench]\n"
            f"pg1-path={self.base / 'data'}\npg1-port={port}\npg1-socket-path={self.base}\n")
        chown_pg(self.conf)
        archive = (f"{shlex.join(self.medark_argv())} pg wal-push %p && pgbackrest "
                   f"--config={self.conf} --stanza=bench archive-push %p")
        self.server = PgServer(self.base, port, bin_dir, settings={
            "archive_mode": "on", "archive_command": "'" + archive.replace("'", "''") + "'",
            "max_wal_size": "'4GB'", "checkpoint_timeout": "'15min'", "fsync": "on",
        })
        self.results: dict[str, object] = {"scale": scale}

    def medark_argv(self, *args: str) -> list[str]:
        return [self.medark, "--repo", str(self.repo), "--password-file", str(self.pwfile),
                "--cache-dir", str(self.cache), *args]

    def run_medark(self, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        return timed(self.medark_argv(*args), as_postgres=True, env=self.env)

    def pgbackrest(self, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        return timed(["pgbackrest", f"--config={self.conf}", "--stanza=bench", *args],
                     as_postgres=True)

    def pgbench(self, *args: str) -> list[str]:
        return [self.server.tool("pgbench"), "-h", "127.0.0.1", "-p", str(self.server.port),
                "-U", "postgres", *args, "postgres"]

    # ---- steps ---------------------------------------------------------------------

    def setup(self) -> None:
        self.run_medark("init")
        self.server.init()
        self.server.start()
        self.pgbackrest("stanza-create")
        log(f"pgbench -i -s {self.scale}")
        t, _ = timed(self.pgbench("-i", "-s", str(self.scale), "-q"))
        self.results["db_bytes"] = int(self.server.sql("SELECT pg_database_size('postgres')"))
        log(f"  initialised in {t:.1f} s, {self.results['db_bytes'] / 1e6:.0f} MB")
        self.server.sql("CHECKPOINT")
        self.server.sql("SELECT pg_switch_wal()")

    def base_backups(self) -> None:
        load = subprocess.Popen(self.pgbench("-c", "2", "-T", str(self.load_seconds * 10)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            figures: dict[str, float] = {}
            t, done = self.run_medark("pg", "backup", "--dsn", self.server.dsn, "--json")
            figures["medark_s"] = t
            summary = json.loads(done.stdout.splitlines()[-1])
            log(f"  medark pg backup: {t:.1f} s")
            t, _ = self.pgbackrest("backup", "--type=full")
            figures["pgbackrest_s"] = t
            log(f"  pgbackrest backup --type=full: {t:.1f} s")
            plain = self.base / "basebackup"
            t, _ = timed([self.server.tool("pg_basebackup"), "-h", "127.0.0.1", "-p",
                          str(self.server.port), "-U", "postgres", "-D", str(plain), "-X",
                          "fetch", "-c", "fast"])
            figures["pg_basebackup_s"] = t
            log(f"  pg_basebackup (plain directory): {t:.1f} s")
        finally:
            load.terminate()
            load.wait()
        figures["medark_stored_bytes"] = du(self.repo)
        figures["pgbackrest_stored_bytes"] = du(self.pgbr)
        figures["pg_basebackup_bytes"] = du(plain)
        figures["medark_data_added_packed"] = summary["data_added_packed"]
        shutil.rmtree(plain)
        self.results["base_backup"] = figures

    def second_backup(self) -> None:
        """Two backups with no writes between them: the second shows what an unchanged
        database costs (the first still carries the load's changes)."""
        self.server.sql("CHECKPOINT")
        self.run_medark("pg", "backup", "--dsn", self.server.dsn)
        t, done = self.run_medark("pg", "backup", "--dsn", self.server.dsn, "--json")
        summary = json.loads(done.stdout.splitlines()[-1])
        share = summary["data_added"] / summary["total_bytes_processed"]
        self.results["second_backup"] = {"medark_s": t, "data_added": summary["data_added"],
                                         "processed": summary["total_bytes_processed"],
                                         "new_share": share}
        log(f"  second base backup, unchanged database: {t:.1f} s, "
            f"{100 * share:.2f} % new data")

    def restores(self) -> None:
        self.server.sql("CREATE TABLE pitr_marker (at timestamptz DEFAULT now())")
        self.server.sql("INSERT INTO pitr_marker DEFAULT VALUES")
        time.sleep(1.1)
        target = dt.datetime.now(dt.UTC)
        time.sleep(1.1)
        self.server.sql("INSERT INTO pitr_marker DEFAULT VALUES")
        segment = self.server.sql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_for(lambda: self.server.sql("SELECT last_archived_wal FROM pg_stat_archiver")
                 >= segment, 120, "archiving")
        figures: dict[str, float] = {}
        mdir = Path(f"{self.base}-medark-restore")
        port = free_port()
        t0 = time.perf_counter()
        done = subprocess.run(
            [*self.medark.split(), "--repo", str(self.repo), "--password-file",
             str(self.pwfile), "pg", "restore", "--target-dir", str(mdir), "--time",
             target.isoformat(), "--start", "--port", str(port), "--archive-mode-off",
             "--medark-command", self.medark, "--json"],
            capture_output=True, text=True, env=dict(self.env, MEDARK_PASSWORD=PASSWORD),
            check=False)
        figures["medark_s"] = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"medark pg restore failed: {done.stderr}")
        assert self.server.sql("SELECT count(*) FROM pitr_marker", port=port) == "1"
        self.server.stop(mdir)
        log(f"  medark pg restore --time --start: {figures['medark_s']:.1f} s")

        pdir = Path(f"{self.base}-pgbackrest-restore")
        pdir.mkdir(mode=0o700)
        chown_pg(pdir)
        port = free_port()
        t0 = time.perf_counter()
        self.pgbackrest("restore", f"--pg1-path={pdir}", "--type=time",
                        f"--target={target.strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
                        "--target-action=promote", "--archive-mode=off")
        with open(pdir / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(f"port = {port}\nunix_socket_directories = '{pdir}'\n")
        as_pg([self.server.tool("pg_ctl"), "-D", str(pdir), "-l", str(pdir / "log"), "-w",
               "-t", "3600", "start"])
        wait_for(lambda: self.server.sql("SELECT pg_is_in_recovery()", port=port) == "f",
                 3600, "pgBackRest's recovery")
        figures["pgbackrest_s"] = time.perf_counter() - t0
        assert self.server.sql("SELECT count(*) FROM pitr_marker", port=port) == "1"
        self.server.stop(pdir)
        log(f"  pgbackrest restore --type=time + start: {figures['pgbackrest_s']:.1f} s")
        shutil.rmtree(mdir, ignore_errors=True)
        shutil.rmtree(pdir, ignore_errors=True)
        self.results["pitr_restore"] = figures

    def rpo(self) -> None:
        self.server.sql("SELECT pg_create_physical_replication_slot('bench', true)")
        stream = subprocess.Popen(
            self.medark_argv("--json", "-v", "pg", "wal-stream", "--dsn", self.server.dsn,
                             "--slot", "bench"),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, user="postgres",
            group="postgres", extra_groups=[], cwd=str(self.cache),
            env=dict(self.env, HOME=str(self.cache)))
        events: list[tuple[int, float]] = []

        def read_events() -> None:
            assert stream.stdout is not None
            for line in stream.stdout:
                doc = json.loads(line)
                if doc.get("message_type") == "wal_archived":
                    events.append((_lsn(doc["end_lsn"]), time.time()))

        reader = threading.Thread(target=read_events, daemon=True)
        reader.start()
        time.sleep(2)
        load = subprocess.Popen(self.pgbench("-c", "2", "-T", str(self.load_seconds + 5)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.server.sql("CREATE TABLE IF NOT EXISTS rpo_probe (at timestamptz)")
        commits: list[tuple[int, float, str]] = []
        deadline = time.time() + self.load_seconds
        while time.time() < deadline:
            lsn = self.server.sql("INSERT INTO rpo_probe VALUES (now()); "
                                  "SELECT pg_current_wal_insert_lsn()").splitlines()[-1]
            commits.append((_lsn(lsn), time.time(), self.server.sql(
                "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")))
            time.sleep(0.25)
        load.wait()
        time.sleep(3)
        stream.terminate()
        stream.wait(timeout=60)
        reader.join(timeout=10)
        stream_samples = []
        for lsn, at, _seg in commits:
            covered = [t for end, t in events if end >= lsn and t >= at - 0.001]
            if covered:
                stream_samples.append(max(0.0, min(covered) - at))
        self.results["rpo"] = {
            "wal_stream_median_s": statistics.median(stream_samples),
            "wal_stream_p99_s": _p99(stream_samples),
            "samples": len(stream_samples), "probes": len(commits),
        }
        log(f"  wal-stream RPO: median {statistics.median(stream_samples):.2f} s, "
            f"p99 {_p99(stream_samples):.2f} s over {len(stream_samples)} commits")

    def archive_lag(self) -> None:
        """commit → its segment archived by archive_command (medark wal-push, then
        pgbackrest archive-push: the figure holds for both)."""
        archived: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                wal = self.server.sql("SELECT last_archived_wal FROM pg_stat_archiver")
                if wal and wal not in archived:
                    archived[wal] = time.time()
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        load = subprocess.Popen(self.pgbench("-c", "2", "-T", str(self.load_seconds)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probes: list[tuple[str, float]] = []
        deadline = time.time() + self.load_seconds
        while time.time() < deadline:
            seg = self.server.sql("INSERT INTO rpo_probe VALUES (now()); "
                                  "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
            probes.append((seg.splitlines()[-1], time.time()))
            time.sleep(0.25)
        load.wait()
        self.server.sql("SELECT pg_switch_wal()")
        time.sleep(5)
        stop.set()
        poller.join()
        samples = []
        for seg, at in probes:
            later = [t for wal, t in archived.items() if wal >= seg]
            if later:
                samples.append(max(0.0, min(later) - at))
        self.results["archive_lag"] = {"median_s": statistics.median(samples),
                                       "p99_s": _p99(samples), "samples": len(samples)}
        log(f"  archive_command lag: median {statistics.median(samples):.2f} s, "
            f"p99 {_p99(samples):.2f} s")

    def close(self) -> None:
        self.server.stop()
        subprocess.run(["pkill", "-f", "--", f"-D {self.base}"], check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="pgbench scale (100: ~1.5 GB)")
    parser.add_argument("--load-seconds", type=int, default=30,
                        help="seconds of pgbench load for each RPO measurement")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the servers and pgBackRest run as the postgres user")
    if shutil.which("pgbackrest") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "pgbackrest"], check=True)
    ensure_bytecode()
    bench = Bench(args.scale, args.load_seconds)
    try:
        bench.setup()
        log("base backup under load")
        bench.base_backups()
        log("second base backup")
        bench.second_backup()
        log("point-in-time restore")
        bench.restores()
        log("RPO under load")
        bench.rpo()
        bench.archive_lag()
    finally:
        bench.close()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = args.out / f"pg-results-{stamp}.json"
    path.write_text(json.dumps(bench.results, indent=2))
    log(json.dumps(bench.results, indent=2))
    log(f"results: {path}")


if __name__ == "__main__":
    main()
