"""`medark daemon` through the real command, on short intervals: jobs run on schedule and
land in the catalog, a failing plan is retried with backoff, SIGTERM stops cleanly, a
restart catches up a missed slot, and a daemon killed mid-job leaves no job "running"."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import MEDARK, PASSWORD, Cli
from prometheus_client.parser import text_string_to_metric_families

CONFIG = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"
max_jobs = 2
prune = "every 3s"

[repositories.offsite]
site = "main"
url = "{offsite}"
password_file = "{password_file}"

[repositories.dr]
site = "main"
url = "{dr}"
password_file = "{password_file}"

[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[systems.lis]
owner = "lab"

[[systems.lis.sources]]
type = "files"
paths = ["{missing}"]

[systems.slow]
owner = "x"

[[systems.slow.sources]]
type = "command"
command = "sh -c 'sleep {slow}; echo dump'"
filename = "slow.sql"

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 2s"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
copies = [{{ to = "offsite", schedule = "continuous" }}, {{ to = "dr", schedule = "every 3s" }}]
restore_test = {{ schedule = "every 3s" }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1h"
retries = 1
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""

SLOW_PLAN = """
[plans.slow]
system = "slow"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = { daily = 7 }
"""


def _setup(cli: Cli, tmp_path: Path, slow: int = 0) -> Path:
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "a.dcm").write_bytes(os.urandom(50_000))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    for copy in ("offsite", "dr"):
        cli("-r", tmp_path / copy, "init")
    config = tmp_path / "medark.toml"
    text = CONFIG.format(state=tmp_path / "state", repo=cli.repo, password_file=password_file,
                         data=data, missing=tmp_path / "absent", slow=slow,
                         offsite=tmp_path / "offsite", dr=tmp_path / "dr")
    config.write_text(text + (SLOW_PLAN if slow else ""), encoding="utf-8")
    return config


def _daemon(cli: Cli, config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    return subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                             "0.1", "--retry-base", "0.5", "--grace", "20", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _snapshots(cli: Cli, repo: Path | None = None) -> list[dict[str, Any]]:
    """The repository's snapshots, waiting out a lock the daemon's forget or prune holds
    (as an operator's script would)."""
    where = ["-r", str(repo)] if repo is not None else []
    result: list[dict[str, Any]] = cli("--retry-lock", "1m", *where, "snapshots",
                                       "--json").json()
    return result


def _jobs(cli: Cli, config: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = cli("jobs", "--json", "--config", config, "--latest",
                                       "500", password=None).json()
    return result


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_the_daemon_runs_retries_stops_and_catches_up(cli: Cli, tmp_path: Path) -> None:
    config = _setup(cli, tmp_path)
    port = _free_port()
    daemon = _daemon(cli, config, "--metrics-listen", f"127.0.0.1:{port}")
    try:
        def done() -> bool:
            jobs = _jobs(cli, config)
            ok = [j for j in jobs if j["kind"] == "backup" and j["plan"] == "pacs"
                  and j["status"] == "succeeded"]
            lis = [j for j in jobs if j["plan"] == "lis" and j["status"] == "failed"]
            copied = [j for j in jobs if j["kind"] == "copy:dr" and j["status"] == "succeeded"]
            tested = [j for j in jobs if j["kind"] == "restore_test"
                      and j["status"] == "succeeded"]
            pruned = [j for j in jobs if j["plan"] == "repository:local"
                      and j["kind"] == "prune" and j["status"] == "succeeded"]
            if not (len(ok) >= 3 and len(lis) >= 2 and len(copied) >= 2 and len(tested) >= 1
                    and len(pruned) >= 2):
                return False
            # retention has removed a snapshot: a forget after a backup that finds the
            # repository locked (a copy or prune running, on a loaded machine every time)
            # is skipped, and the next one catches up
            made = {j["snapshot_id"] for j in ok if j["snapshot_id"]}
            return len(_snapshots(cli)) < len(made)
        _until(done, 120, "three scheduled backups, a retried failure and retention")
        scraped: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

        def sized() -> bool:  # repository sizes are read in the background after writes
            scraped.append(_scrape(port))
            return any(name == "medark_repository_stored_bytes" and value > 0
                       and ("repository", "local") in labels
                       for (name, labels), value in scraped[-1].items())
        _until(sized, 60, "the local repository's size in the metrics")
        metrics = scraped[-1]
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    events = _events(out)
    assert events[0]["event"] == "ready" and events[-1]["event"] == "stopped"
    jobs = _jobs(cli, config)
    assert not [j for j in jobs if j["status"] == "running"]
    pacs = sorted((j for j in jobs if j["plan"] == "pacs" and j["kind"] == "backup"),
                  key=lambda j: j["id"])
    # every slot once: a slot seen twice is a retry (attempt 2 after a failed attempt 1,
    # e.g. a backup that met prune's exclusive lock), never a second run that succeeded
    slots: dict[str, list[dict[str, Any]]] = {}
    for job in pacs:
        slots.setdefault(job["scheduled_for"], []).append(job)
    for tries in slots.values():
        assert [j["attempt"] for j in tries] == list(range(1, len(tries) + 1)), tries
        assert all(j["status"] == "failed" for j in tries[:-1]), tries
    lis = sorted((j for j in jobs if j["plan"] == "lis"), key=lambda j: j["id"])
    assert [j["attempt"] for j in lis] == [1, 2] and lis[0]["scheduled_for"] == \
        lis[1]["scheduled_for"]
    assert all("absent" in (j["error"] or "") for j in lis)
    snaps = _snapshots(cli)
    made = {j["snapshot_id"] for j in pacs if j["snapshot_id"]}
    # retention (daily = 7) runs after every backup and keeps one snapshot of today plus
    # those whose forget found the repository busy (skipped: the next forget catches up)
    assert 1 <= len(snaps) < len(made) and len(made) >= 3
    assert all(s["id"] in made and "plan=pacs" in s["tags"] for s in snaps)
    kinds = {j["kind"] for j in jobs if j["plan"] == "pacs"}
    # each copy target applies its retention (the plan's: none of their own) after each
    # scheduled copy (dr) or, for the continuous copy (offsite), after each backup
    assert kinds == {"backup", "forget", "copy:dr", "follow:offsite", "restore_test",
                     "forget:dr", "forget:offsite"}
    failed_forgets = [j for j in jobs if j["kind"].startswith("forget")
                      and j["status"] != "succeeded"]
    assert not failed_forgets, failed_forgets
    # daily = 7 at dr: the newest of each (UTC) day, and the oldest while counts are left
    assert len(_snapshots(cli, tmp_path / "dr")) <= 3
    tested = [j for j in jobs if j["kind"] == "restore_test" and j["status"] == "succeeded"]
    assert all(j["details"]["rto_seconds"] > 0 for j in tested)
    follow = [j for j in jobs if j["kind"] == "follow:offsite"]
    assert len(follow) == 1 and follow[0]["status"] == "succeeded"  # stopped by SIGTERM
    for copy in ("offsite", "dr"):  # the copies hold the plan's snapshots
        copied = _snapshots(cli, tmp_path / copy)
        assert copied and {s["original"] for s in copied} <= made

    time.sleep(2.5)  # the daemon is down past a pacs slot: the restart catches it up
    again = _daemon(cli, config)
    try:
        _until(lambda: len([j for j in _jobs(cli, config)
                            if j["plan"] == "pacs" and j["kind"] == "backup"])
               > len(pacs), 60, "the catch-up run")
        again.send_signal(signal.SIGTERM)
        out, _err = again.communicate(timeout=60)
    finally:
        if again.poll() is None:
            again.kill()
    assert "catch_up" in [e["event"] for e in _events(out)]

    pacs_labels = (("plan", "pacs"), ("system", "pacs"))
    assert 0 <= metrics[("medark_plan_rpo_seconds", pacs_labels)] < 60
    assert metrics[("medark_plan_rpo_target_seconds", pacs_labels)] == 3600
    assert ("medark_plan_rpo_seconds", (("plan", "lis"), ("system", "lis"))) not in metrics
    failed = (("kind", "backup"), ("plan", "lis"), ("status", "failed"))
    assert metrics[("medark_jobs_total", failed)] == 2
    ok = (("kind", "backup"), ("plan", "pacs"), ("status", "succeeded"))
    assert metrics[("medark_jobs_total", ok)] >= 3
    assert metrics[("medark_job_last_success_timestamp_seconds",
                    (("kind", "copy:dr"), ("plan", "pacs")))] > 0
    assert 0 < metrics[("medark_plan_rto_seconds", pacs_labels)] < 3600  # the restore test
    stored = {dict(labels)["repository"]: value for (name, labels), value in metrics.items()
              if name == "medark_repository_stored_bytes"}
    assert set(stored) == {"local", "offsite", "dr"} and stored["local"] > 0


def test_a_daemon_killed_mid_job_leaves_it_failed_not_running(cli: Cli,
                                                              tmp_path: Path) -> None:
    config = _setup(cli, tmp_path, slow=4)
    daemon = _daemon(cli, config)
    try:
        _until(lambda: any(j["plan"] == "slow" and j["status"] == "running"
                           for j in _jobs(cli, config)), 60, "the slow job to start")
        daemon.kill()  # SIGKILL: no chance to record anything
        daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    orphans = [j["id"] for j in _jobs(cli, config)
               if j["plan"] == "slow" and j["status"] == "running"]
    assert orphans
    # its child died with it (SIGTERM: stopped cleanly), so no snapshot appears behind the
    # job the next daemon will mark failed
    _until(lambda: subprocess.run(["pgrep", "-f", "slow.sql"], capture_output=True,
                                  check=False).returncode == 1, 15, "the child to stop")
    time.sleep(4)  # past the dump's end: nothing finishes late
    assert not [s for s in _snapshots(cli) if "plan=slow" in s["tags"]]
    again = _daemon(cli, config)
    try:
        _until(lambda: not any(j["status"] == "running" and j["plan"] == "slow"
                               and j["attempt"] == 1 for j in _jobs(cli, config)),
               30, "the orphaned job to be reaped")
        again.send_signal(signal.SIGTERM)
        out, _err = again.communicate(timeout=60)
    finally:
        if again.poll() is None:
            again.kill()
    # the new daemon may start the plan again; the orphan is the job to look at
    reaped = next(j for j in _jobs(cli, config) if j["id"] == orphans[0])
    assert reaped["status"] == "failed" and "interrupted" in reaped["error"]
    assert "reaped" in [e["event"] for e in _events(out)]
