"""`medark daemon`'s log under concurrency, through the real command: many plans due every
second on one repository, each job a child process, so events from several threads come
at once. Every line must be one whole event, in text (`TIME EVENT key=value …`) and in
--json (one object per line); was `…attempt=12026-12-05T12:16:43Z started plan=…`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from conftest import MEDARK, Cli
from plan_site import write_plan_config

PLANS = 8
EVENTS = 40
"""Job events (started, finished) to see before stopping: many rounds of overlaps."""

SYSTEMS = """\
[systems.quick]
owner = "lab"

[[systems.quick.sources]]
type = "command"
command = "sh -c 'echo result'"
filename = "quick.sql"

[systems.broken]
owner = "nobody"

[[systems.broken.sources]]
type = "files"
paths = ["{missing}"]

"""

PLAN = """\
[plans.{name}]
system = "{system}"
repository = "local"
schedule = "every 1s"
rpo = "1h"
rto = "1h"
retention = {{{{ daily = 7 }}}}

"""

LINE = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z [a-z_]+'
                  r'( [a-z_]+=([^\s"=\\]+|"([^"\\]|\\.)*"))*')
"""A text event: UTC time, event name, then key=value with a bare word or a JSON string."""


JOB_EVENT = re.compile(r'Z (started|finished) |"event": "(started|finished)"')


def _config(cli: Cli, tmp_path: Path) -> Path:
    plans = "".join(PLAN.format(name=f"p{i}", system="quick") for i in range(PLANS - 1))
    body = SYSTEMS + plans + PLAN.format(name="broken", system="broken")
    config = write_plan_config(cli, tmp_path, body, missing=tmp_path / "absent")
    text = config.read_text(encoding="utf-8")  # all the plans may write at once
    config.write_text(text.replace('password_file = "', f"max_jobs = {PLANS}\npassword_file"
                                   ' = "', 1), encoding="utf-8")
    return config


def _run_daemon(cli: Cli, config: Path, *mode: str) -> list[str]:
    """The daemon's stdout lines, once at least EVENTS job events were printed."""
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, *mode, "daemon", "--config", str(config), "--poll",
                               "0.1", "--retry-base", "0.2", "--grace", "30"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert daemon.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while sum(bool(JOB_EVENT.search(ln)) for ln in lines) < EVENTS:
            line = daemon.stdout.readline()
            assert line, f"the daemon ended early: {daemon.wait(30)}"
            lines.append(line)
            assert time.monotonic() < deadline, "too few job events"
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    return "".join([*lines, out]).split("\n")[:-1]  # only "\n" ends a line


def _overlapping(cli: Cli, config: Path) -> int:
    """Pairs of jobs that ran at the same time, from the catalog: proof of concurrency."""
    jobs: list[dict[str, Any]] = cli("jobs", "--json", "--config", config, "--latest",
                                     "1000", password=None).json()
    spans = sorted((datetime.fromisoformat(j["started_at"]),
                    datetime.fromisoformat(j["finished_at"]))
                   for j in jobs if j["finished_at"])
    return sum(1 for (_s1, end), (start, _e2) in pairwise(spans) if start < end)


def test_every_text_event_is_one_whole_line(cli: Cli, tmp_path: Path) -> None:
    config = _config(cli, tmp_path)
    lines = _run_daemon(cli, config)
    broken = [ln for ln in lines if not LINE.fullmatch(ln)]
    assert not broken, broken[:5]
    events = [ln.split(" ", 2)[1] for ln in lines]
    assert events[0] == "ready" and events[-1] == "stopped"
    assert events.count("started") + events.count("finished") >= EVENTS
    failed = [ln for ln in lines if " plan=broken " in ln and " finished " in ln]
    # values with spaces are quoted, so each field is unambiguous
    assert failed and all(re.search(r' error="[^"]*absent', ln) for ln in failed)
    assert any(re.search(r' title="[^"]+ [^"]+"', ln) for ln in lines
               if " alert_firing " in ln)
    assert _overlapping(cli, config) > 0


def test_every_json_event_is_one_object_per_line(cli: Cli, tmp_path: Path) -> None:
    config = _config(cli, tmp_path)
    lines = _run_daemon(cli, config, "--json")
    docs = [json.loads(ln) for ln in lines]  # each line parses on its own
    assert all(isinstance(d, dict) and d["message_type"] == "daemon" for d in docs)
    assert docs[0]["event"] == "ready" and docs[-1]["event"] == "stopped"
    assert sum(d["event"] in ("started", "finished") for d in docs) >= EVENTS
    assert {d["plan"] for d in docs if d["event"] == "finished"} >= {"p0", "broken"}
    assert _overlapping(cli, config) > 0
