"""The WAL a crashed primary wrote after a position, read with PostgreSQL's own pg_waldump.

A failover reports its data-loss window: what the dead primary wrote (and acknowledged)
that the promoted standby never replayed. When the primary's data directory is still
readable, its pg_wal says exactly that: where its valid WAL ends, and how many
transactions committed after the standby's replay position, and when.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medark.errors import SourceError
from medark.sources.postgres import control
from medark.sources.postgres.fencing import PAGE_HEADER_LONG, PAGE_HEADER_SHORT
from medark.sources.postgres.wal import (
    SEGMENT_RE,
    HistoryEntry,
    format_lsn,
    parse_history,
    parse_lsn,
    segment_name,
    segment_of,
    timeline_of_segment_at,
)

RECORD_RE = re.compile(r"^rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*\d+, "
                       r"lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (\S+)(.*)$")
TIME_RE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,6}))? (?:UTC|GMT)\b")
COMMITS = ("COMMIT", "COMMIT_PREPARED")
XACT_ENDS = (*COMMITS, "ABORT", "ABORT_PREPARED")
"""The records a recovery_target_time is checked against (PostgreSQL's recoveryStopsBefore):
recovery stops before the first of them stamped after the target, and nowhere else."""
NORMAL_END = ("error in WAL record at", "could not find a valid record after")
"""pg_waldump's last words at the end of valid WAL: a crashed server leaves a torn or
zeroed record there, and PostgreSQL's own recovery stops at the same place."""
MISSING_FILE_RE = re.compile(r'could not find file "([0-9A-F]{24})"')


@dataclass(frozen=True)
class WalTail:
    """The WAL from a position to the end of valid WAL. `end_lsn` is where the last valid
    record ends (what pg_last_wal_replay_lsn() would read after replaying all of it);
    `commits` counts COMMIT and COMMIT_PREPARED records that start at or after the position,
    with the first and last of their commit times."""

    end_lsn: int
    commits: int
    first_commit_at: datetime | None
    last_commit_at: datetime | None
    timeline: int


def record_end(start: int, total_len: int, segment_size: int, block_size: int) -> int:
    """Where a record of `total_len` bytes at `start` ends, as the WAL reader counts it
    (page headers skipped where the record crosses pages, then MAXALIGN)."""
    pos, left = start, total_len
    while left > block_size - pos % block_size:
        left -= block_size - pos % block_size
        pos += block_size - pos % block_size
        pos += PAGE_HEADER_LONG if pos % segment_size == 0 else PAGE_HEADER_SHORT
    return (pos + left + 7) & ~7


def commit_time(desc: str) -> datetime | None:
    """The commit time pg_waldump prints (in its TZ, which we set to UTC)."""
    match = TIME_RE.search(desc)
    if not match:
        return None
    stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    micros = int((match.group(2) or "0").ljust(6, "0"))
    return stamp.replace(microsecond=micros, tzinfo=UTC)


def _timelines(pg_wal: Path, checkpoint_tli: int) -> tuple[int, list[HistoryEntry]]:
    """The newest timeline with a segment in pg_wal (a primary promoted after its last
    checkpoint writes on one newer than pg_controldata says), and its history."""
    try:
        names = os.listdir(pg_wal)
    except OSError as e:
        raise SourceError(f"cannot read {pg_wal}: {e.strerror or e}") from None
    tlis = [int(m.group(1), 16) for n in names if (m := SEGMENT_RE.match(n))]
    newest = max([checkpoint_tli, *tlis])
    history_file = pg_wal / f"{newest:08X}.history"
    if newest == 1 or not history_file.is_file():
        return newest, []
    try:
        return newest, parse_history(history_file.read_text())
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {history_file}: {e}") from None


def wal_tail(datadir: Path, after_lsn: int, bin_dir: str | None = None,
             timeout: float = 60.0) -> WalTail:
    """Read `datadir/pg_wal` from `after_lsn` to the end of valid WAL, following the
    timeline switches of the newest timeline's history. With no record at or after
    `after_lsn`, `end_lsn` is `after_lsn` itself."""
    fields = control.controldata(datadir, bin_dir)
    pg_wal = datadir / "pg_wal"
    if not pg_wal.is_dir():
        raise SourceError(f"{datadir} has no pg_wal directory")
    try:
        checkpoint_tli = int(fields["Latest checkpoint's TimeLineID"])
        seg_size = int(fields.get("Bytes per WAL segment", 16 * 1024 * 1024))
        block_size = int(fields.get("WAL block size", 8192))
    except (KeyError, ValueError):
        raise SourceError(f"pg_controldata {datadir} gave no timeline") from None
    newest, history = _timelines(pg_wal, checkpoint_tli)
    path = sorted({h.parent for h in history} | {newest})
    deadline = time.monotonic() + timeout
    tail = WalTail(after_lsn, 0, None, None, checkpoint_tli)
    pos = after_lsn
    while True:
        # The newest timeline holding the segment: a timeline's first segment is a copy of
        # its parent's up to the switch (whose own copy may be gone, or renamed .partial).
        segno = segment_of(pos, seg_size)
        tli = max((t for t in path if t >= timeline_of_segment_at(pos, history, newest)
                   and (pg_wal / segment_name(t, segno, seg_size)).is_file()), default=None)
        if tli is None:
            if pos > after_lsn:
                return tail  # the WAL ends at a segment boundary
            raise SourceError(f"{pg_wal} has no segment {segment_name(path[0], segno, seg_size)}"
                              f" (nor of a later timeline), which holds {format_lsn(pos)}: "
                              "the WAL from there is gone")
        stop = next((h.switch_lsn for h in history if h.parent == tli), None)
        argv = [control.program(datadir, "pg_waldump", bin_dir), "-p", str(pg_wal),
                "-t", str(tli), "-s", format_lsn(pos)]
        if stop is not None:
            argv += ["-e", format_lsn(stop)]
        tail, out_of_files = _dump(datadir, argv, tail, tli, (seg_size, block_size),
                                   deadline - time.monotonic())
        if stop is not None and tail.end_lsn >= stop:
            pos = stop
        elif out_of_files and tail.end_lsn > pos:
            pos = tail.end_lsn  # the next segment may be on a later timeline
        else:
            return tail


def _dump(datadir: Path, argv: list[str], before: WalTail, tli: int,
          sizes: tuple[int, int], timeout: float) -> tuple[WalTail, bool]:
    """One pg_waldump run on one timeline, its records streamed (a long lag is millions of
    lines), added to what the runs on earlier timelines found; and whether it stopped at
    a segment boundary for want of the next file."""
    end, commits = before.end_lsn, before.commits
    first, last = before.first_commit_at, before.last_commit_at
    timed_out = threading.Event()
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    with tempfile.TemporaryFile("w+") as err:
        with subprocess.Popen(control.as_owner(datadir, argv), stdout=subprocess.PIPE,
                              stderr=err, stdin=subprocess.DEVNULL, text=True,
                              env=env) as proc:

            def expire() -> None:
                timed_out.set()
                proc.kill()

            timer = threading.Timer(max(timeout, 0.1), expire)
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    match = RECORD_RE.match(line)
                    if not match:
                        continue
                    rmgr, total, lsn, kind, desc = match.groups()
                    end = record_end(parse_lsn(lsn), int(total), *sizes)
                    if rmgr == "XLOG" and kind == "SWITCH":  # the rest of its segment
                        end = -(-end // sizes[0]) * sizes[0]
                    if rmgr == "Transaction" and kind in COMMITS:
                        commits += 1
                        at = commit_time(desc)
                        first = first or at
                        last = at or last
                proc.wait()
            except BaseException:
                proc.kill()
                raise
            finally:
                timer.cancel()
        err.seek(0)
        message = " ".join(err.read().split())
    if timed_out.is_set():
        raise SourceError(f"pg_waldump on {argv[2]} did not finish in {timeout:.0f} s")
    missing = MISSING_FILE_RE.search(message)
    # WAL that ends at a segment's end, the next segment not created yet (or on a later
    # timeline)
    out_of_files = missing is not None and end % sizes[0] == 0 and \
        missing.group(1) == segment_name(tli, segment_of(end, sizes[0]), sizes[0])
    if proc.returncode != 0 and not out_of_files \
            and not any(words in message for words in NORMAL_END):
        raise SourceError(f"pg_waldump on {argv[2]} failed: "
                          f"{message or f'exit {proc.returncode}'}")
    return WalTail(end, commits, first, last, tli), out_of_files


def last_xact_end(pg_waldump: str, directory: Path, segment: str,
                  timeout: float = 60.0) -> datetime | None:
    """The latest commit or abort time in one WAL segment file `directory/segment` (a
    complete segment or a streamed part of one), None when it holds no such record.
    Records cut off at the segment's end (the next file is not there) or at the end of
    valid WAL are the normal end; any other failure of pg_waldump (another major
    version's WAL, an unreadable file) is a SourceError, never taken for "no commit"."""
    argv = [pg_waldump, "-p", str(directory), "-r", "Transaction", segment]
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"pg_waldump on {segment} did not finish in {timeout:.0f} s") \
            from None
    except OSError as exc:
        raise SourceError(f"cannot run {pg_waldump}: {exc.strerror or exc}") from None
    latest: datetime | None = None
    for line in done.stdout.splitlines():
        match = RECORD_RE.match(line)
        if match and match.group(1) == "Transaction" and match.group(4) in XACT_ENDS:
            at = commit_time(match.group(5))
            if at is not None and (latest is None or at > latest):
                latest = at
    message = " ".join(done.stderr.split())
    missing = MISSING_FILE_RE.search(message)
    if done.returncode != 0 and not (missing and missing.group(1) != segment) \
            and not any(words in message for words in NORMAL_END):
        raise SourceError(f"pg_waldump on {segment} failed: "
                          f"{message[-300:] or f'exit {done.returncode}'}")
    return latest
