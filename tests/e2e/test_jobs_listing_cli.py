"""`medark jobs` for a person, through the real command: backups, copies, a failure and
restore tests (one from the offsite copy, the longest kind) in one listing, read at 80
columns: every column aligned under its header, times in the configuration's time zone,
a restore test's restored size apart from "added", its RTO to the millisecond, sizes in
binary units."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from conftest import Cli
from plan_site import write_plan_config

ZONE = "Asia/Kolkata"
"""UTC+05:30: a time left in UTC, or in the machine's zone, cannot pass for it."""

CONFIG = """\
[repositories.offsite]
site = "main"
url = "{offsite}"
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

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
copies = [{{ to = "offsite", schedule = "every 1h" }}]

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""

SIZE = r"\d+ B|\d+\.\d\d [KMGT]iB"
TOOK = re.compile(r"(\d+)ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm")
ROW = re.compile(r" *\d+  \S")


def _site(cli: Cli, tmp_path: Path) -> Path:
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "study.dcm").write_bytes(b"DICM" * 300_000)  # 1.14 MiB
    cli("-r", tmp_path / "offsite", "init")
    config = write_plan_config(cli, tmp_path, CONFIG, data=data, missing=tmp_path / "absent",
                               offsite=tmp_path / "offsite")
    config.write_text(f'timezone = "{ZONE}"\n' + config.read_text(encoding="utf-8"),
                      encoding="utf-8")
    return config


def _columns(header: str) -> dict[str, tuple[int, int]]:
    """Each header word's start and end column."""
    return {m.group(): (m.start(), m.end()) for m in re.finditer(r"\S+", header)}


def test_the_job_listing_is_aligned_local_and_says_what_each_job_did(
        cli: Cli, tmp_path: Path) -> None:
    config = _site(cli, tmp_path)
    cli("run", "pacs", "--config", config, password=None)
    cli("verify", "pacs", "--config", config, password=None)
    cli("verify", "pacs", "--from", "offsite", "--config", config, password=None)
    assert cli("run", "lis", "--config", config, password=None, check=False).returncode == 1
    jobs: list[dict[str, Any]] = cli("jobs", "--json", "--config", config,
                                     password=None).json()
    by_id = {j["id"]: j for j in jobs}
    assert {j["kind"] for j in jobs} >= {"backup", "copy:offsite", "restore_test",
                                         "restore_test:offsite"}

    listing = cli("jobs", "--config", config, password=None).stdout
    lines = listing.splitlines()
    # only a path (one token, never cut) may be wider: the temporary directory's name
    wide = [ln for ln in lines if len(ln) > 80 and len(ln.split()) > 1]
    assert not wide, wide
    assert lines[0].startswith(f"Times in {ZONE} (IST)")
    columns = _columns(lines[1])
    assert list(columns) == ["ID", "job", "status", "started", "took", "added", "snapshot"]
    rows = {}
    for i, line in enumerate(lines[2:], start=2):
        if not ROW.match(line):
            continue
        job = by_id[int(line.split()[0])]
        # left-aligned columns start under their header, right-aligned ones end under it
        job_start = columns["job"][0]
        assert line[job_start:].startswith(f"{job['plan']} {job['kind']} "), line
        fields = {name: line[start:].split("  ")[0] for name, (start, _e) in columns.items()
                  if name in ("status", "started", "snapshot")}
        for name in ("took", "added"):
            end = columns[name][1]
            fields[name] = line[:end].rsplit("  ", 1)[-1].strip()
            assert line[end:end + 2] == "  ", line
        assert fields["status"] == job["status"]
        started = datetime.fromisoformat(job["started_at"]).astimezone(ZoneInfo(ZONE))
        assert fields["started"] == started.strftime("%H:%M:%S")
        # the day heads its jobs
        heading = next(ln for ln in reversed(lines[:i]) if not ROW.match(ln)
                       and not ln.startswith(" "))
        assert heading == started.date().isoformat()
        assert TOOK.fullmatch(fields["took"]), fields["took"]
        assert fields["snapshot"] == (job["snapshot_id"] or "-")[:8]
        block = []  # the indented lines under the row: what it did, or its error
        for below_line in lines[i + 1:]:
            if ROW.match(below_line) or not below_line.startswith(" "):
                break
            block.append(below_line)
        rows[job["id"]] = (fields, block)

    assert set(rows) == set(by_id)
    for job_id, (fields, block) in rows.items():
        job = by_id[job_id]
        below = block[0] if block else ""
        if job["kind"].startswith("restore_test"):
            assert fields["added"] == "-"
            assert re.fullmatch(rf" +restored ({SIZE})", below), below
            assert "1.14 MiB" in below  # what was restored, in binary units
            rto = job["details"]["rto_seconds"]
            took = TOOK.fullmatch(fields["took"])
            assert took is not None
            if round(rto * 1000) < 1000:  # to the millisecond, never "0s"
                assert took.group(1) is not None and int(took.group(1)) == round(rto * 1000)
        elif job["kind"] in ("backup", "copy:offsite") and job["status"] == "succeeded":
            assert re.fullmatch(SIZE, fields["added"]), fields["added"]
        elif job["status"] == "failed":
            assert "absent" in " ".join(block) and fields["added"] == "-"
