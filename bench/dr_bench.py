#!/usr/bin/env python3
"""Benchmark a planned database switch-over (issue 15): `medark dr switchover` against
`patronictl switchover`, side by side in one run, with a write load on.

Two PostgreSQL primary + streaming standby pairs run at the same time on this machine,
with the same server settings:

  * Patroni: one etcd on loopback, two Patroni nodes (``use_pg_rewind: true``, Patroni's
    default ttl/loop_wait/retry_timeout), HAProxy in front as Patroni's docs set it up
    (``option httpchk GET /primary`` on both nodes' REST API, ``on-marked-down
    shutdown-sessions``; ``--haproxy-check``, default ``inter 1s fall 1 rise 1``);
  * Medark: a primary and a ``pg_basebackup -R`` standby streaming through a slot
    (tests/pg_pair.py), pgbouncer in front (tests/pgbouncer_server.py: transaction
    pooling, ``server_login_retry = 0.1``), and a ``[dr.his]`` plan with a pgbouncer
    client switch.

Every run (``--runs``, default 5), the tools in a rotating order, each switch in the
direction opposite to its last: a client writes one row per request, each its own
transaction, back to back through the tool's entry point (bench/dr_load.py), starting
``--warmup`` seconds before the command (``patronictl -c CFG switchover --leader X
--candidate Y --force``, ``medark dr switchover his --yes --json``) and ending ``--tail``
seconds after the first write the new primary acknowledged (or after the command, if
later). Then, once the pair is whole again (one primary, one streaming standby, the
entry point routing to the primary), every acknowledged id is looked up on the new
primary.

Per switch: **switch time** = command start → the first acknowledged write answered by
the new primary; **failed requests**; **lost writes** = acknowledged ids missing
afterwards; also the command's own duration, the longest acknowledged request (how long
the entry point held a request) and the window from the first to the last failure.
Prints median and max per tool and the Patroni/Medark ratio; writes
``bench/out/dr-results-<date>.{json,md}``. Run as root (the servers run as the postgres
OS user). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from dr_load import CREATE_TABLE, Writer, execute, present_ids, server_port  # noqa: E402
from dr_patroni import PatroniCluster  # noqa: E402
from dr_site import pg_nodes, preamble  # noqa: E402
from pg_pair import PgPair, build_pair  # noqa: E402
from pg_server import PgServer, pg_bin, wait_for  # noqa: E402
from pgbouncer_server import PgbouncerServer  # noqa: E402
from run_bench import ensure_bytecode, ensure_debs, log  # noqa: E402

TOOLS = ("patroni", "medark")
DEBS = {"patroni": "patroni", "etcd": "etcd-server", "haproxy": "haproxy",
        "pgbouncer": "pgbouncer"}
SYSTEM = "his"
# The same server settings for both pairs (Patroni adds its own on top: wal_level,
# hot_standby, max_connections, …). fsync on: a hospital's server.
PARAMETERS = {"fsync": "on", "synchronous_commit": "on", "wal_log_hints": "on",
              "hot_standby": "on", "wal_keep_size": "64MB", "shared_buffers": "64MB",
              "wal_receiver_status_interval": "1s", "max_wal_senders": "10",
              "max_replication_slots": "10"}
FIRST_ACK_TIMEOUT = 120.0
SETTLE_TIMEOUT = 180.0


class Setup:
    """One tool's pair and entry point."""

    name = ""
    entry_dsn = ""

    def start(self) -> None:
        raise NotImplementedError

    def roles(self) -> tuple[int, int]:
        """(primary port, standby port) as found now."""
        raise NotImplementedError

    def command(self, old: int, new: int) -> list[str]:
        raise NotImplementedError

    def succeeded(self, rc: int, out: str) -> bool:
        return rc == 0

    def settle(self, primary: int) -> None:
        """Wait until the pair is whole again with `primary` leading and clients routed."""
        raise NotImplementedError

    def dsn(self, port: int) -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname=postgres"

    def describe(self) -> dict[str, object]:
        return {}

    def close(self) -> None:
        raise NotImplementedError


def _streaming(port: int, bin_dir: str) -> bool:
    probe = PgServer(Path("/tmp"), port, bin_dir)
    try:
        found = probe.sql("SELECT count(*) FROM pg_stat_replication WHERE state = "
                          "'streaming' AND replay_lsn = pg_current_wal_flush_lsn()")
        return bool(found == "1")
    except Exception:
        return False


def _entry_port(dsn: str) -> int | None:
    try:
        return server_port(dsn)
    except Exception:
        return None


class PatroniSetup(Setup):
    name = "patroni"

    def __init__(self, bin_dir: str, haproxy_check: str, loop_wait: int) -> None:
        self.bin_dir = bin_dir
        self.cluster = PatroniCluster(bin_dir, PARAMETERS, haproxy_check, loop_wait=loop_wait)
        self.entry_dsn = self.cluster.entry_dsn

    def start(self) -> None:
        self.cluster.start()
        execute(self.cluster.leader().dsn, CREATE_TABLE)

    def _node(self, port: int) -> Any:
        return next(n for n in self.cluster.nodes if n.pg_port == port)

    def roles(self) -> tuple[int, int]:
        leader = self.cluster.leader()
        return leader.pg_port, self.cluster.other(leader).pg_port

    def command(self, old: int, new: int) -> list[str]:
        return ["patronictl", "-c", str(self.cluster.nodes[0].config), "switchover",
                "--leader", self._node(old).name, "--candidate", self._node(new).name,
                "--force"]

    def succeeded(self, rc: int, out: str) -> bool:
        return rc == 0 and "Successfully switched over" in out

    def settle(self, primary: int) -> None:
        self.cluster.wait_healthy(SETTLE_TIMEOUT)
        if self.cluster.leader().pg_port != primary:
            raise RuntimeError("Patroni's leader is not the switch's candidate")
        wait_for(lambda: _streaming(primary, self.bin_dir), SETTLE_TIMEOUT,
                 "Patroni's replica to catch up")
        self.cluster.wait_entry(primary)

    def describe(self) -> dict[str, object]:
        return {"versions": self.cluster.versions(), "dcs": self.cluster.dcs,
                "haproxy.cfg": self.cluster.haproxy_config(),
                "entry": "HAProxy (TCP), Patroni REST API health checks"}

    def close(self) -> None:
        self.cluster.close()


class MedarkSetup(Setup):
    name = "medark"

    def __init__(self, bin_dir: str, medark: str, work: Path) -> None:
        self.bin_dir = bin_dir
        self.medark = medark
        self.work = work
        self.pair: PgPair | None = None
        self.pgb: PgbouncerServer | None = None
        self.config = work / "medark.toml"
        self.catalog = f"sqlite:///{work / 'catalog.db'}"

    def start(self) -> None:
        self.pair = build_pair(settings={k: f"'{v}'" for k, v in PARAMETERS.items()})
        execute(self.pair.primary.dsn, CREATE_TABLE)
        self.pgb = PgbouncerServer(target_port=self.pair.primary.port, db=SYSTEM)
        self.pgb.start()
        self.entry_dsn = self.pgb.client_dsn
        self.config.write_text(self.config_text(), encoding="utf-8")
        wait_for(lambda: _entry_port(self.entry_dsn) == self.pair.primary.port,
                 30, "pgbouncer to reach the primary")

    def config_text(self) -> str:
        assert self.pair is not None and self.pgb is not None
        p, s = self.pair.primary, self.pair.standby
        return "# written by bench/dr_bench.py\n" + preamble(p.dsn, system=SYSTEM) + f"""
[dr.{SYSTEM}]
feed = "stream"
slot = "{self.pair.slot}"
fencing = "readonly"

""" + pg_nodes(p, s, SYSTEM) + f"""
[dr.{SYSTEM}.client_switch]
type = "pgbouncer"
database = "{SYSTEM}"
ini = "{self.pgb.ini}"
admin_dsn = "{self.pgb.admin_dsn}"

[[dr.{SYSTEM}.health]]
type = "sql"
name = "his-answers"
query = "SELECT 1"
expect = "1"
"""

    def roles(self) -> tuple[int, int]:
        assert self.pair is not None
        found: dict[str, int] = {}
        for server in (self.pair.primary, self.pair.standby):
            recovery = server.sql("SELECT pg_is_in_recovery()")
            found["standby" if recovery == "t" else "primary"] = server.port
        if set(found) != {"primary", "standby"}:
            raise RuntimeError(f"the Medark pair is not one primary and one standby: {found}")
        return found["primary"], found["standby"]

    def command(self, old: int, new: int) -> list[str]:
        return [self.medark, "dr", "switchover", SYSTEM, "--yes", "--json", "--config",
                str(self.config), "--catalog", self.catalog]

    def settle(self, primary: int) -> None:
        wait_for(lambda: self.roles()[0] == primary, SETTLE_TIMEOUT,
                 "the Medark pair to have the new primary")
        wait_for(lambda: _streaming(primary, self.bin_dir), SETTLE_TIMEOUT,
                 "the reinstated standby to stream and catch up")
        wait_for(lambda: _entry_port(self.entry_dsn) == primary, 60,
                 "pgbouncer to route to the new primary")

    def describe(self) -> dict[str, object]:
        assert self.pgb is not None
        return {"medark": _version([self.medark, "--version"]),
                "pgbouncer": _version(["pgbouncer", "--version"]),
                "pgbouncer.ini": self.pgb.ini.read_text(),
                "config": self.config.read_text(),
                "entry": "pgbouncer (transaction pooling, server_login_retry 0.1)"}

    def close(self) -> None:
        if self.pgb is not None:
            self.pgb.stop()
        if self.pair is not None:
            self.pair.close()


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[0] if lines else f"unknown (exit {done.returncode})"


def _last_json(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, dict) else None
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


class DrBench:
    def __init__(self, args: argparse.Namespace, setups: dict[str, Setup]) -> None:
        self.args = args
        self.setups = setups
        self.next_id = 1
        self.runs: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.logs = args.workdir / "logs"

    def switch(self, setup: Setup, r: int) -> dict[str, Any]:
        old, new = setup.roles()
        first_id = self.next_id
        writer = Writer(setup.entry_dsn, first_id, retry_pause=self.args.retry_pause)
        writer.start()
        time.sleep(self.args.warmup)
        log_dir = self.logs / f"run{r + 1}"
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd = setup.command(old, new)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        env["MEDARK_CACHE_DIR"] = str(self.args.workdir / "cache")
        started_utc = dt.datetime.now(dt.UTC)
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                              stdin=subprocess.DEVNULL, timeout=600)
        t1 = time.monotonic()
        (log_dir / f"{setup.name}.out").write_text(done.stdout)
        (log_dir / f"{setup.name}.err").write_text(done.stderr)
        ok = setup.succeeded(done.returncode, done.stdout + done.stderr)
        first = None
        deadline = t0 + FIRST_ACK_TIMEOUT
        while ok and time.monotonic() < deadline:
            first = writer.first_ack_on(new, t0)
            if first is not None:
                break
            time.sleep(0.02)
        end = max(t1, first.done if first else t1) + self.args.tail
        time.sleep(max(0.0, end - time.monotonic()))
        writer.stop()
        self.next_id = writer.next_id + 1
        reqs = list(writer.requests)
        record: dict[str, Any] = {
            "tool": setup.name, "run": r + 1, "from_port": old, "to_port": new,
            "cmd": cmd, "rc": done.returncode, "command_ok": ok,
            "started_utc": started_utc.isoformat(),
            "command_s": t1 - t0,
            "switch_s": (first.done - t0) if first else None,
            "requests": len(reqs),
        }
        if not ok:
            self.errors.append(f"run {r + 1} {setup.name}: command failed (exit "
                               f"{done.returncode}): {(done.stderr or done.stdout)[-400:]}")
        try:
            setup.settle(new if ok else setup.roles()[0])
        except Exception as exc:
            self.errors.append(f"run {r + 1} {setup.name}: did not settle: {exc}")
            record["settled"] = False
        acked = {q.id for q in reqs if q.ok}
        primary_now = setup.roles()[0]
        present = present_ids(setup.dsn(primary_now), first_id)
        lost = sorted(acked - present)
        failed = [q for q in reqs if not q.ok]
        ok_reqs = [q for q in reqs if q.ok]
        record.update({
            "acknowledged": len(acked), "failed": len(failed), "lost": len(lost),
            "lost_ids": lost[:50],
            "failure_window_s": (failed[-1].done - failed[0].sent) if failed else 0.0,
            "longest_request_s": max((q.done - q.sent for q in ok_reqs), default=None),
            "acked_by_old_after_start": sum(1 for q in ok_reqs
                                            if q.port == old and q.done >= t0),
            "errors": sorted({q.error for q in failed if q.error})[:5],
            "failures": [{"id": q.id, "sent": round(q.sent - t0, 3),
                          "done": round(q.done - t0, 3), "error": q.error}
                         for q in failed[:200]],
            "first_ack_new": None if first is None else {
                "id": first.id, "sent": round(first.sent - t0, 3),
                "done": round(first.done - t0, 3)},
            "last_ack_old": max((round(q.done - t0, 3) for q in ok_reqs if q.port == old),
                                default=None),
            "tool_report": _last_json(done.stdout) if setup.name == "medark" else None,
        })
        sw = record["switch_s"]
        log(f"  {setup.name:8s} {old}->{new}: switch "
            f"{'-' if sw is None else f'{sw:.2f} s'}, command {t1 - t0:.2f} s, "
            f"{len(failed)} failed, {len(lost)} lost of {len(acked)} acknowledged")
        time.sleep(self.args.pause)
        return record

    def run(self) -> None:
        names = list(self.setups)
        for r in range(self.args.runs):
            order = names[r % len(names):] + names[:r % len(names)]
            log(f"run {r + 1}/{self.args.runs}")
            for name in order:
                self.runs.append(self.switch(self.setups[name], r))


FIGURES = (("switch_s", "switch time: command → first write acknowledged by the new "
            "primary (s)"),
           ("failed", "failed client requests"),
           ("lost", "acknowledged writes lost"),
           ("command_s", "the command's own duration (s)"),
           ("longest_request_s", "longest acknowledged request (s)"),
           ("failure_window_s", "first to last failure (s)"))


def summarize(runs: list[dict[str, Any]], tools: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool]
        out[tool] = {"runs": len(mine), "failed_commands": sum(1 for r in mine
                                                               if not r["command_ok"])}
        for key, _ in FIGURES:
            values = [r[key] for r in mine if r.get(key) is not None]
            out[tool][key] = {"median": statistics.median(values) if values else None,
                              "max": max(values) if values else None,
                              "values": values}
    return out


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if key.endswith("_s") else f"{value:g}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "∞ (Medark 0)"
    return f"{a / b:.2f}×"


def table(summary: dict[str, dict[str, Any]], tools: list[str]) -> str:
    head = ["figure"]
    for t in tools:
        head += [f"{t} median", f"{t} max"]
    both = "patroni" in tools and "medark" in tools
    if both:
        head.append("patroni/medark (median)")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title in FIGURES:
        cells = [title]
        for t in tools:
            cells += [_fmt(summary[t][key]["median"], key), _fmt(summary[t][key]["max"], key)]
        if both:
            cells.append(_ratio(summary["patroni"][key]["median"],
                                summary["medark"][key]["median"]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_run(runs: list[dict[str, Any]]) -> str:
    lines = []
    for r in runs:
        sw = r["switch_s"]
        lines.append(f"run {r['run']} {r['tool']} {r['from_port']}->{r['to_port']}: switch "
                     f"{'-' if sw is None else f'{sw:.2f} s'}, command {r['command_s']:.2f} s,"
                     f" failed {r['failed']}, lost {r['lost']} of {r['acknowledged']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="switches per tool (default 5)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="patroni and/or medark, comma-separated (default both)")
    ap.add_argument("--warmup", type=float, default=1.5,
                    help="seconds of load before each command (default 1.5)")
    ap.add_argument("--tail", type=float, default=1.0,
                    help="seconds of load after the first write on the new primary")
    ap.add_argument("--pause", type=float, default=2.0,
                    help="seconds of rest after a settled switch (default 2)")
    ap.add_argument("--retry-pause", type=float, default=0.05,
                    help="the client's wait after a failed request (default 0.05 s)")
    ap.add_argument("--haproxy-check", default="inter 1s fall 1 rise 1",
                    help="HAProxy default-server check timing for the Patroni entry point "
                    "(Patroni's example: 'inter 3s fall 3 rise 2')")
    ap.add_argument("--patroni-loop-wait", type=int, default=10,
                    help="Patroni's loop_wait (default 10, Patroni's default)")
    ap.add_argument("--medark", default=str(REPO_ROOT / ".venv" / "bin" / "medark"))
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / "out" / "dr-work")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default bench/out/dr-results-<date>.json; the "
                    "Markdown table next to it)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install missing patroni, etcd-server, haproxy, "
                    "pgbouncer")
    args = ap.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown or not args.tools:
        ap.error(f"--tools: choose from {', '.join(TOOLS)}")
    return args


def medark_has_switchover(medark: str) -> bool:
    done = subprocess.run([medark, "dr", "--help"], capture_output=True, text=True,
                          check=False)
    return "switchover" in str(done.stdout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        sys.exit("run as root: the servers run as the postgres user, HAProxy and apt need root")
    bin_dir = pg_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL server programs are not installed (make debs)")
    commands = {"patroni": ["patroni", "etcd", "haproxy"], "medark": ["pgbouncer"]}
    ensure_debs([c for t in args.tools for c in commands[t]], not args.no_install, DEBS)
    if "medark" in args.tools:
        if not os.access(args.medark, os.X_OK):
            sys.exit(f"medark not found at {args.medark} (run `make venv` or pass --medark)")
        if not medark_has_switchover(args.medark):
            sys.exit("this medark has no `dr switchover` yet: run with --tools patroni")
        ensure_bytecode()
    args.workdir = args.workdir.resolve()
    for sub in ("logs", "cache"):
        path = args.workdir / sub
        if path.exists():
            subprocess.run(["rm", "-rf", str(path)], check=True)
        path.mkdir(parents=True)
    (args.workdir / "catalog.db").unlink(missing_ok=True)

    started = dt.datetime.now()
    setups: dict[str, Setup] = {}
    bench: DrBench | None = None
    try:
        for tool in args.tools:
            setup: Setup = (PatroniSetup(bin_dir, args.haproxy_check, args.patroni_loop_wait)
                            if tool == "patroni" else MedarkSetup(bin_dir, args.medark,
                                                                  args.workdir))
            setups[tool] = setup
            log(f"setup: {tool} (untimed)")
            setup.start()
        bench = DrBench(args, setups)
        bench.run()
        described = {name: s.describe() for name, s in setups.items()}
    finally:
        for setup in setups.values():
            try:
                setup.close()
            except Exception as exc:  # teardown must reach every setup
                log(f"teardown of {setup.name}: {exc}")
    summary = summarize(bench.runs, args.tools)
    md = table(summary, args.tools)
    notes = [
        "switch time: from the command's start to the first write acknowledged by the new "
        "primary (the server that answered comes from the write's own statement).",
        f"Load: one client, one row per request in its own transaction, back to back; after "
        f"a failed request it reconnects after {args.retry_pause} s.",
        f"Patroni entry point: HAProxy, httpchk GET /primary, default-server "
        f"{args.haproxy_check}; Patroni loop_wait {args.patroni_loop_wait}, ttl 30, "
        "retry_timeout 10.",
        "Medark entry point: pgbouncer, transaction pooling, server_login_retry 0.1.",
        f"Medians and max over {args.runs} switch(es) per tool, alternating direction; the "
        "ratio is Patroni / Medark (above 1: Medark better).",
    ]
    out = args.out or REPO_ROOT / "bench" / "out" / f"dr-results-{started:%Y-%m-%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                        "postgres": _version([os.path.join(bin_dir, "postgres"), "--version"]),
                        "parameters": PARAMETERS, "setups": described},
        "summary": summary,
        "runs": bench.runs,
        "errors": bench.errors,
        "notes": notes,
        "table": md,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(md + "\n\n" + per_run(bench.runs) + "\n\n"
                                      + "\n".join(f"* {n}" for n in notes) + "\n")
    print("\n" + md + "\n\n" + per_run(bench.runs) + "\n")
    for note in notes:
        print(f"* {note}")
    for err in bench.errors:
        print(f"ERROR: {err}")
    print(f"\nresults: {out} (Markdown: {out.with_suffix('.md')})")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
