#!/usr/bin/env python3
"""Benchmark an unplanned failover and a drill (issue 15), with a write load on; the
planned switch-over is bench/dr_bench.py, whose setups and client this reuses.

Scenarios (``--scenarios``, default all three, ``--runs`` each, default 5):

  * ``failover``: Medark's pair (primary + streaming standby, pgbouncer in front with
    ``server_login_retry = 0.1``, the ``[dr.his]`` plan of dr_bench.py). With the client
    writing through pgbouncer, kill -9 the primary's postmaster, then run ``medark dr
    failover his --yes --json``. Figures: command start → first write acknowledged by
    the new primary (through pgbouncer), kill → that write, failed requests, acknowledged
    writes missing on the new primary against the commits the command reported lost
    (``data_loss``). Then ``medark dr failback his --yes --json`` under the same load
    (command → first write on the configured primary, failed requests, writes lost).
  * ``drill``: the same pair; ``medark dr drill his --json`` with the load on, the DR
    site's command service a second copy of the test HIS app (tests/his_app.py) started
    against ``MEDARK_DR_NEW_PRIMARY_PORT`` and an HTTP health check on its /health.
    Figures: time to healthy (``switch_seconds``), the command's total, failed and lost
    production writes, and whether production replication kept its walsender.
  * ``patroni``: Patroni's pair of dr_bench.py (HAProxy in front); kill -9 the leader's
    postmaster and let Patroni act by itself. Figure: kill → first write acknowledged
    through HAProxy after the outage began, and which node answered it.

Writes ``bench/out/dr-failover-results-<date>.{json,md}``. Run as root. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dr_bench import (
    DEBS,
    FIRST_ACK_TIMEOUT,
    PARAMETERS,
    SETTLE_TIMEOUT,
    SYSTEM,
    MedarkSetup,
    PatroniSetup,
    _entry_port,
    _last_json,
    _streaming,
    _version,
    medark_has_switchover,
)
from dr_load import Request, Writer, present_ids
from pg_server import PgServer, free_port, make_base, pg_bin, wait_for
from run_bench import ensure_bytecode, ensure_debs, log

REPO_ROOT = Path(__file__).resolve().parent.parent
HIS_APP = REPO_ROOT / "tests" / "his_app.py"
SCENARIOS = ("failover", "drill", "patroni")


class FailoverMedarkSetup(MedarkSetup):
    """dr_bench's Medark pair, plus a drill plan: the DR site's command service (a second
    HIS app against the drill's sandbox) and an HTTP health check on it."""

    def __init__(self, bin_dir: str, medark: str, work: Path) -> None:
        super().__init__(bin_dir, medark, work)
        self.drill_config = work / "drill.toml"
        self.app_port = free_port()

    def start(self) -> None:
        super().start()
        w = self.work
        app = shlex.join([sys.executable, str(HIS_APP), "--port", str(self.app_port),
                          "--dsn"])
        dsn = '"host=127.0.0.1 port=$MEDARK_DR_NEW_PRIMARY_PORT user=postgres dbname=postgres"'
        start = (f"PYTHONPATH={REPO_ROOT} {app} {dsn} </dev/null >>{w}/drill-app.log 2>&1 & "
                 f"echo $! > {w}/drill-app.pid")
        stop = f"kill $(cat {w}/drill-app.pid) && rm {w}/drill-app.pid"
        self.drill_config.write_text(self.config_text() + f"""
[[dr.{SYSTEM}.services.east]]
name = "his-app"
start = '{start}'
stop = '{stop}'

[[dr.{SYSTEM}.health]]
type = "http"
name = "his-app"
site = "east"
url = "http://127.0.0.1:{self.app_port}/health"
timeout = "60s"
""", encoding="utf-8")

    def server(self, port: int) -> PgServer:
        assert self.pair is not None
        return next(s for s in (self.pair.primary, self.pair.standby) if s.port == port)

    def medark_cmd(self, verb: str, *extra: str, config: Path | None = None) -> list[str]:
        return [self.medark, "dr", verb, SYSTEM, *extra, "--json", "--config",
                str(config or self.config), "--catalog", self.catalog]

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "drill config": self.drill_config.read_text()}


def kill_postmaster(data: Path) -> tuple[float, float]:
    """kill -9 the postmaster of `data`; (the kill's time, when its pid was gone)."""
    pid = int((data / "postmaster.pid").read_text().split()[0])
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)  # ours (subreaper): reaped at once, as systemd would
    except ChildProcessError:
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the killed postmaster")
    return killed, time.monotonic()


def subreaper(on: bool) -> None:
    """On: orphans below this process (postmasters whose pg_ctl exited) become its
    children, so a killed postmaster is reaped at once, as on a host whose init reaps
    promptly (here init reaps late, and until then a zombie postmaster still looks
    running). Off for Patroni: it waits for the postmasters it double-forked to vanish."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, int(on), 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        log(f"note: cannot set the child subreaper flag to {on}")


def first_ack(writer: Writer, after: float, port: int | None = None,
              timeout: float = FIRST_ACK_TIMEOUT) -> Request | None:
    """The first acknowledged write sent at or after `after` (committed by `port`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for req in list(writer.requests):
            if req.ok and req.sent >= after and (port is None or req.port == port):
                return req
        time.sleep(0.02)
    return None


def request_figures(reqs: list[Request], t0: float) -> dict[str, Any]:
    failed = [q for q in reqs if not q.ok]
    ok = [q for q in reqs if q.ok]
    return {
        "requests": len(reqs), "acknowledged": len(ok), "failed": len(failed),
        "failure_window_s": (failed[-1].done - failed[0].sent) if failed else 0.0,
        "longest_request_s": max((q.done - q.sent for q in ok), default=None),
        "errors": sorted({q.error for q in failed if q.error})[:5],
        "failures": [{"id": q.id, "sent": round(q.sent - t0, 3), "done": round(q.done - t0, 3),
                      "error": q.error} for q in failed[:100]],
    }


class FailoverBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.next_id = 1
        self.runs: list[dict[str, Any]] = []
        self.errors: list[str] = []

    # -- helpers ---------------------------------------------------------------------
    def writer(self, dsn: str) -> Writer:
        w = Writer(dsn, self.next_id, retry_pause=self.args.retry_pause)
        w.start()
        time.sleep(self.args.warmup)
        return w

    def finish(self, w: Writer, until: float) -> list[Request]:
        time.sleep(max(0.0, until + self.args.tail - time.monotonic()))
        w.stop()
        self.next_id = w.next_id + 1
        return list(w.requests)

    def run_cmd(self, cmd: list[str], name: str, r: int,
                extra_env: dict[str, str] | None = None
                ) -> tuple[subprocess.CompletedProcess[str], float, float]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        env["MEDARK_CACHE_DIR"] = str(self.args.workdir / "cache")
        env.update(extra_env or {})
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                              stdin=subprocess.DEVNULL, timeout=900)
        t1 = time.monotonic()
        log_dir = self.args.workdir / "logs" / f"run{r + 1}"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{name}.out").write_text(done.stdout)
        (log_dir / f"{name}.err").write_text(done.stderr)
        return done, t0, t1

    def check(self, r: int, what: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:
            self.errors.append(f"run {r + 1} {what}: {exc}")
            return False

    def fail(self, r: int, what: str, done: subprocess.CompletedProcess[str]) -> None:
        self.errors.append(f"run {r + 1} {what}: exit {done.returncode}: "
                           f"{(done.stderr or done.stdout)[-400:]}")

    # -- Medark failover + failback ---------------------------------------------------
    def medark_failover(self, s: FailoverMedarkSetup, r: int) -> None:
        old, new = s.roles()
        first_id = self.next_id
        w = self.writer(s.entry_dsn)
        killed, gone = kill_postmaster(s.server(old).data)
        done, t0, t1 = self.run_cmd(s.medark_cmd("failover", "--yes"), "failover", r)
        doc = _last_json(done.stdout) or {}
        ok = done.returncode == 0 and doc.get("status") == "succeeded"
        first = first_ack(w, t0, new) if ok else None
        reqs = self.finish(w, max(t1, first.done if first else t1))
        rec: dict[str, Any] = {
            "scenario": "failover", "run": r + 1, "from_port": old, "to_port": new,
            "rc": done.returncode, "command_ok": ok, "command_s": t1 - t0,
            "kill_to_command_s": t0 - killed, "postmaster_gone_s": gone - killed,
            "switch_s": (first.done - t0) if first else None,
            "kill_to_first_ack_s": (first.done - killed) if first else None,
            **request_figures(reqs, t0),
            "acked_by_old_after_kill": sum(1 for q in reqs if q.ok and q.port == old
                                           and q.done >= killed),
            "tool_report": doc,
        }
        if not ok:
            self.fail(r, "failover", done)
        self.check(r, "failover: pgbouncer to route to the new primary", lambda: wait_for(
            lambda: _entry_port(s.entry_dsn) == new, 60, "pgbouncer on the new primary"))
        acked = {q.id for q in reqs if q.ok}
        lost = sorted(acked - present_ids(s.dsn(new), first_id))
        loss = doc.get("data_loss") or {}
        rec.update(lost=len(lost), lost_ids=lost[:50], reported_commits=loss.get("commits"),
                   reported_bytes=loss.get("bytes"), reported_basis=loss.get("basis"))
        self.runs.append(rec)
        log(f"  failover {old}->{new}: command->first write "
            f"{_s(rec['switch_s'])}, kill->first write {_s(rec['kill_to_first_ack_s'])}, "
            f"command {t1 - t0:.2f} s, {rec['failed']} failed, {len(lost)} lost of "
            f"{len(acked)} acknowledged, reported {loss.get('commits')} commits "
            f"({loss.get('bytes')} bytes)")
        if not ok:
            return
        if not self.args.failback_crashed:
            # the old primary's host is repaired and boots: the fence's standby.signal
            # brings it up read-only (untimed)
            s.server(old).start()
            rec["old_restarted_in_recovery"] = s.server(old).sql(
                "SELECT pg_is_in_recovery()") == "t"
        time.sleep(self.args.pause)
        self.medark_failback(s, r, home=old, away=new)

    def medark_failback(self, s: FailoverMedarkSetup, r: int, home: int, away: int) -> None:
        first_id = self.next_id
        w = self.writer(s.entry_dsn)
        done, t0, t1 = self.run_cmd(s.medark_cmd("failback", "--yes"), "failback", r)
        doc = _last_json(done.stdout) or {}
        ok = done.returncode == 0 and doc.get("status") == "succeeded"
        first = first_ack(w, t0, home) if ok else None
        reqs = self.finish(w, max(t1, first.done if first else t1))
        if not ok:
            self.fail(r, "failback", done)
        settled = self.check(r, "failback: did not settle", lambda: s.settle(home))
        acked = {q.id for q in reqs if q.ok}
        lost = sorted(acked - present_ids(s.dsn(s.roles()[0]), first_id))
        rec = {"scenario": "failback", "run": r + 1, "from_port": away, "to_port": home,
               "rc": done.returncode, "command_ok": ok, "settled": settled,
               "command_s": t1 - t0, "switch_s": (first.done - t0) if first else None,
               **request_figures(reqs, t0), "lost": len(lost), "lost_ids": lost[:50],
               "tool_report": doc}
        self.runs.append(rec)
        log(f"  failback {away}->{home}: command->first write {_s(rec['switch_s'])}, "
            f"command {t1 - t0:.2f} s, {rec['failed']} failed, {len(lost)} lost of "
            f"{len(acked)} acknowledged")
        time.sleep(self.args.pause)

    # -- Medark drill ------------------------------------------------------------------
    def medark_drill(self, s: FailoverMedarkSetup, r: int) -> None:
        primary, standby = s.roles()
        probe = s.server(primary)
        walsender = probe.sql("SELECT pid FROM pg_stat_replication")
        first_id = self.next_id
        sandboxes = make_base()
        w = self.writer(s.entry_dsn)
        done, t0, t1 = self.run_cmd(s.medark_cmd("drill", config=s.drill_config), "drill",
                                    r, {"MEDARK_DR_DRILL_DIR": str(sandboxes)})
        reqs = self.finish(w, t1)
        doc = _last_json(done.stdout) or {}
        ok = done.returncode == 0 and doc.get("status") == "succeeded"
        if not ok:
            self.fail(r, "drill", done)
        acked = {q.id for q in reqs if q.ok}
        lost = sorted(acked - present_ids(s.dsn(primary), first_id))
        left = os.listdir(sandboxes)
        shutil.rmtree(sandboxes, ignore_errors=True)
        rec = {"scenario": "drill", "run": r + 1, "rc": done.returncode, "command_ok": ok,
               "command_s": t1 - t0, "switch_s": doc.get("switch_seconds"),
               "total_s": doc.get("total_seconds"), **request_figures(reqs, t0),
               "lost": len(lost), "lost_ids": lost[:50],
               "off_primary": sum(1 for q in reqs if q.ok and q.port != primary),
               "walsender_kept": probe.sql("SELECT pid FROM pg_stat_replication") == walsender,
               "roles_kept": s.roles() == (primary, standby),
               "sandbox_left": left, "database_bytes": int(probe.sql(
                   "SELECT pg_database_size('postgres')")), "tool_report": doc}
        if not (rec["walsender_kept"] and rec["roles_kept"]) or left:
            self.errors.append(f"run {r + 1} drill: production changed or leftovers: "
                               f"walsender kept {rec['walsender_kept']}, roles kept "
                               f"{rec['roles_kept']}, left {left}")
        self.runs.append(rec)
        log(f"  drill: healthy after {_s(rec['switch_s'])}, total {_s(rec['total_s'])}, "
            f"command {t1 - t0:.2f} s, {rec['failed']} failed, {len(lost)} lost of "
            f"{len(acked)} acknowledged, walsender kept {rec['walsender_kept']}")
        self.check(r, "drill: settle", lambda: wait_for(
            lambda: _streaming(primary, s.bin_dir), SETTLE_TIMEOUT, "the standby"))
        time.sleep(self.args.pause)

    # -- Patroni: kill -9 of the leader's postmaster ------------------------------------
    def patroni_kill(self, s: PatroniSetup, r: int) -> None:
        leader = s.cluster.leader()
        old = leader.pg_port
        first_id = self.next_id
        w = self.writer(s.entry_dsn)
        killed, _ = kill_postmaster(leader.base / "data")
        deadline = time.monotonic() + FIRST_ACK_TIMEOUT
        outage: Request | None = None
        while outage is None and time.monotonic() < deadline:
            outage = next((q for q in list(w.requests) if not q.ok and q.done >= killed),
                          None)
            time.sleep(0.01)
        first = first_ack(w, outage.done, timeout=max(1.0, deadline - time.monotonic())) \
            if outage else None
        reqs = self.finish(w, first.done if first else time.monotonic())
        def settle() -> None:
            s.cluster.wait_healthy(SETTLE_TIMEOUT)
            s.settle(s.cluster.leader().pg_port)
        settled = self.check(r, "patroni: did not settle", settle)
        now = s.cluster.leader().pg_port
        acked = {q.id for q in reqs if q.ok}
        lost = sorted(acked - present_ids(s.dsn(now), first_id))
        rec = {"scenario": "patroni", "run": r + 1, "from_port": old, "to_port": now,
               "settled": settled, "command_ok": first is not None,
               "switch_s": (first.done - killed) if first else None,
               "answered_by": first.port if first else None,
               "failed_over": bool(first and first.port != old),
               "acked_before_outage": sum(1 for q in reqs if q.ok and killed <= q.sent
                                          and (outage is None or q.done <= outage.done)),
               **request_figures(reqs, killed), "lost": len(lost), "lost_ids": lost[:50]}
        if first is None:
            self.errors.append(f"run {r + 1} patroni: no acknowledged write after the kill")
        self.runs.append(rec)
        log(f"  patroni kill -9 {old}: first write {_s(rec['switch_s'])} after the kill, "
            f"answered by {rec['answered_by']} (leader now {now}), {rec['failed']} failed, "
            f"{len(lost)} lost of {len(acked)} acknowledged")
        time.sleep(self.args.pause)


def _git_state() -> dict[str, str]:
    """The commit the run measured, and Medark sources changed in the tree since."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *argv], capture_output=True,
                              text=True, check=False)
        return done.stdout.strip()
    return {"head": git("rev-parse", "HEAD"), "dirty_src": git("status", "--short", "src")}


def _or(value: object, default: str) -> str:
    return default if value is None else str(value)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "failover": (("switch_s", "command → first write acknowledged by the new primary (s)"),
                 ("kill_to_first_ack_s", "kill -9 → that write (s)"),
                 ("command_s", "the command's own duration (s)"),
                 ("failed", "failed client requests"),
                 ("failure_window_s", "first to last failure (s)"),
                 ("lost", "acknowledged writes missing on the new primary"),
                 ("reported_commits", "commits the command reported lost (data_loss)")),
    "failback": (("switch_s", "command → first write acknowledged by the configured "
                  "primary (s)"),
                 ("command_s", "the command's own duration (s)"),
                 ("failed", "failed client requests"),
                 ("lost", "acknowledged writes lost")),
    "drill": (("switch_s", "time to healthy, switch_seconds (s)"),
              ("total_s", "the drill's total, total_seconds (s)"),
              ("command_s", "the command's wall time (s)"),
              ("failed", "failed production requests"),
              ("lost", "acknowledged production writes lost")),
    "patroni": (("switch_s", "kill -9 → first write acknowledged through HAProxy (s)"),
                ("failed", "failed client requests"),
                ("failure_window_s", "first to last failure (s)"),
                ("lost", "acknowledged writes lost")),
}


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for scenario, figures in FIGURES.items():
        mine = [r for r in runs if r["scenario"] == scenario]
        if not mine:
            continue
        out[scenario] = {"runs": len(mine)}
        for key, _ in figures:
            values = [r[key] for r in mine if r.get(key) is not None]
            out[scenario][key] = {"median": statistics.median(values) if values else None,
                                  "max": max(values) if values else None, "values": values}
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    rows = ["| scenario | figure | median | max | runs |", "|---|---|---|---|---|"]
    for scenario, figures in FIGURES.items():
        if scenario not in summary:
            continue
        for key, title in figures:
            f = summary[scenario][key]

            def fmt(v: float | None, k: str = key) -> str:
                return "-" if v is None else (f"{v:.2f}" if k.endswith("_s") else f"{v:g}")
            rows.append(f"| {scenario} | {title} | {fmt(f['median'])} | {fmt(f['max'])} | "
                        f"{len(f['values'])} |")
    return "\n".join(rows)


def per_run(runs: list[dict[str, Any]]) -> str:
    lines = []
    for r in runs:
        extra = {"failover": f", kill->first write {_s(r.get('kill_to_first_ack_s'))}, "
                             f"reported {r.get('reported_commits')} commits",
                 "drill": f", total {_s(r.get('total_s'))}",
                 "patroni": f", answered by {r.get('answered_by')}"}.get(r["scenario"], "")
        lines.append(f"run {r['run']} {r['scenario']}: {_s(r.get('switch_s'))}{extra}, "
                     f"failed {r['failed']}, lost {r['lost']} of {r['acknowledged']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="failover, drill and/or patroni, comma-separated (default all)")
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--warmup", type=float, default=1.5,
                    help="seconds of load before each kill or command (default 1.5)")
    ap.add_argument("--tail", type=float, default=1.0,
                    help="seconds of load after the first write on the new primary")
    ap.add_argument("--pause", type=float, default=2.0,
                    help="seconds of rest between steps (default 2)")
    ap.add_argument("--retry-pause", type=float, default=0.05,
                    help="the client's wait after a failed request (default 0.05 s)")
    ap.add_argument("--failback-crashed", action="store_true",
                    help="run the failback on the killed primary's data directory as it "
                    "is, without starting it first (default: start it, read-only)")
    ap.add_argument("--haproxy-check", default="inter 1s fall 1 rise 1")
    ap.add_argument("--patroni-loop-wait", type=int, default=10)
    ap.add_argument("--patroni-primary-start-timeout", type=int, default=None,
                    help="Patroni's primary_start_timeout (its default 300: a crashed "
                    "leader is restarted in place; 0: fail over as soon as the crash is "
                    "detected)")
    ap.add_argument("--medark", default=str(REPO_ROOT / ".venv" / "bin" / "medark"))
    ap.add_argument("--workdir", type=Path,
                    default=REPO_ROOT / "bench" / "out" / "dr-failover-work")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args(argv)
    args.scenarios = [t.strip() for t in args.scenarios.split(",") if t.strip()]
    if not args.scenarios or any(t not in SCENARIOS for t in args.scenarios):
        ap.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        sys.exit("run as root: the servers run as the postgres user")
    bin_dir = pg_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL server programs are not installed (make debs)")
    medark_on = any(s in args.scenarios for s in ("failover", "drill"))
    needs = (["pgbouncer"] if medark_on else []) + (
        ["patroni", "etcd", "haproxy"] if "patroni" in args.scenarios else [])
    ensure_debs(needs, not args.no_install, DEBS)
    if medark_on:
        if not medark_has_switchover(args.medark):
            sys.exit(f"no `dr switchover` in {args.medark}")
        ensure_bytecode()
    args.workdir = args.workdir.resolve()
    for sub in ("logs", "cache"):
        subprocess.run(["rm", "-rf", str(args.workdir / sub)], check=True)
        (args.workdir / sub).mkdir(parents=True)
    (args.workdir / "catalog.db").unlink(missing_ok=True)
    git_state = _git_state()
    started = dt.datetime.now()
    bench = FailoverBench(args)
    described: dict[str, object] = {}
    if medark_on:
        medark = FailoverMedarkSetup(bin_dir, args.medark, args.workdir)
        subreaper(True)
        try:
            log("setup: medark (untimed)")
            medark.start()
            for scenario in ("failover", "drill"):
                if scenario not in args.scenarios:
                    continue
                for r in range(args.runs):
                    log(f"{scenario} {r + 1}/{args.runs}")
                    (bench.medark_failover if scenario == "failover"
                     else bench.medark_drill)(medark, r)
            described["medark"] = medark.describe()
        finally:
            medark.close()
            subreaper(False)
    if "patroni" in args.scenarios:
        patroni = PatroniSetup(bin_dir, args.haproxy_check, args.patroni_loop_wait)
        if args.patroni_primary_start_timeout is not None:
            patroni.cluster.dcs["primary_start_timeout"] = args.patroni_primary_start_timeout
        try:
            log("setup: patroni (untimed)")
            patroni.start()
            for r in range(args.runs):
                log(f"patroni {r + 1}/{args.runs}")
                bench.patroni_kill(patroni, r)
            described["patroni"] = patroni.describe()
        finally:
            patroni.close()
    summary = summarize(bench.runs)
    md = table(summary)
    notes = [
        "Load: one client through the entry point (pgbouncer for Medark, HAProxy for "
        "Patroni), one row per request in its own transaction, back to back; after a "
        f"failed request it reconnects after {args.retry_pause} s.",
        "failover: kill -9 of the primary's postmaster, then (once its pid is gone) "
        "`medark dr failover his --yes --json`; failback: `medark dr failback his --yes "
        "--json`, under the same load.",
        "drill: `medark dr drill his --json` with a command service at the DR site (a "
        "second HIS app against the sandbox) and an HTTP health check on it.",
        "patroni: kill -9 of the leader's postmaster, Patroni acting by itself (loop_wait "
        f"{args.patroni_loop_wait}, ttl 30, primary_start_timeout "
        f"{_or(args.patroni_primary_start_timeout, 'default (300)')}, HAProxy "
        f"default-server "
        f"{args.haproxy_check}); "
        "time from the kill to the first acknowledged write sent after the first failure.",
    ]
    out = args.out or (REPO_ROOT / "bench" / "out"
                       / f"dr-failover-results-{started:%Y-%m-%dT%H%M%S}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"started": started.isoformat(timespec="seconds"),
           "finished": dt.datetime.now().isoformat(timespec="seconds"),
           "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "environment": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "postgres": _version([os.path.join(bin_dir, "postgres"),
                                                 "--version"]),
                           "parameters": PARAMETERS, "setups": described,
                           "git_at_start": git_state},
           "summary": summary, "runs": bench.runs, "errors": bench.errors, "notes": notes,
           "table": md}
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = md + "\n\n" + per_run(bench.runs) + "\n\n" + "\n".join(f"* {n}" for n in notes)
    out.with_suffix(".md").write_text(text + "\n")
    print("\n" + text + "\n")
    for err in bench.errors:
        print(f"ERROR: {err}")
    print(f"\nresults: {out} (Markdown: {out.with_suffix('.md')})")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
