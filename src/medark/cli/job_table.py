"""`medark jobs` as a table for a person, 80 columns wide.

Columns are as wide as their data (a kind like `restore_test:offsite` keeps every column
after it aligned), and a date line heads each day's jobs so that a row holds only the
time: with typical plan names a row fits in 80 columns. Times are in the hospital's time
zone, as `plan show` and the reports give them. A restore test adds nothing: its "added"
is "-" and the line below says what it restored; its "took" is the achieved RTO, to the
millisecond under a second. A failed job's error is on the lines below, wrapped (a path
in it stays whole).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import date, datetime, tzinfo

from medark.catalog.models import SUCCEEDED
from medark.catalog.store import JobRecord
from medark.config.plans import RESTORE_TEST
from medark.util.sizes import format_bytes, format_duration

WIDTH = 80
GAP = "  "
ADD_NOTHING = ("forget", "prune", RESTORE_TEST)
"""Kinds that write no new data, whose "added" is "-"."""


def job_lines(jobs: Sequence[JobRecord], zone: tzinfo, now: datetime) -> list[str]:
    rows = [_row(j, zone) for j in jobs]
    header = ["ID", "job", "status", "started", "took", "added", "snapshot"]
    right = {0, 4, 5}
    widths = [max(len(cells[i]) for cells in [header, *(r[1] for r in rows)])
              for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return GAP.join(c.rjust(w) if i in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    indent = " " * (widths[0] + len(GAP))  # under the job
    out = [f"Times in {zone} ({now.astimezone(zone).strftime('%Z')}), newest first.",
           line(header)]
    shown: date | None = None
    for day, cells, note in rows:
        if day is not None and day != shown:
            out.append(day.isoformat())
            shown = day
        out.append(line(cells))
        if note:
            out += textwrap.wrap(note, WIDTH, initial_indent=indent, subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False)
    return out


def _row(job: JobRecord, zone: tzinfo) -> tuple[date | None, list[str], str]:
    """The local day it started, the cells, and a note for the line below: the error, or
    what a restore test restored."""
    local = job.started_at.astimezone(zone) if job.started_at is not None else None
    seconds = _seconds(job)
    took = format_duration(seconds) if seconds is not None else "-"
    quiet = job.kind.split(":")[0] in ADD_NOTHING or (not job.bytes_added
                                                       and job.status != SUCCEEDED)
    added = "-" if quiet else format_bytes(job.bytes_added or 0)
    note = job.error or ""
    if job.kind.startswith(RESTORE_TEST) and job.bytes_added:
        note = f"restored {format_bytes(job.bytes_added)}" + (f"; {note}" if note else "")
    cells = [str(job.id), f"{job.plan} {job.kind}", job.status,
             local.strftime("%H:%M:%S") if local else "-", took, added,
             (job.snapshot_id or "-")[:8]]
    return (local.date() if local else None), cells, note


def _seconds(job: JobRecord) -> float | None:
    """A restore test's recorded RTO, else the job's duration."""
    rto = (job.details or {}).get("rto_seconds")
    if isinstance(rto, int | float):
        return float(rto)
    if job.started_at is None or job.finished_at is None:
        return None
    return (job.finished_at - job.started_at).total_seconds()

