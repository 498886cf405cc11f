"""Collecting the database servers' audit logs into the audit trail (docs/dbaudit.md).

One pass per source: list its log files (oldest first), find the one being read by its
device and inode, read it from the saved offset to its last complete record, store the
events (one transaction per batch, each event holding its position), save the state;
when a newer file existed before the read began, the current one is finished: go on
with the next from its start.

Exactly once: the state is saved after its batch is stored; a collector killed between
the two finds, at start, a newer stored event than its state accounts for (by the
trail's number) and resumes after that event's position instead."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from medark.catalog.audit_trail import AuditEntry, append_many
from medark.catalog.dbaudit_state import (
    ACTION_PREFIX,
    ACTOR_PREFIX,
    CollectorState,
    last_stored,
    load_states,
    save_state,
)
from medark.catalog.store import Catalog
from medark.config.dbaudit import DbAuditConf
from medark.config.plans import MedarkConfig
from medark.scheduler.alerts import Alerter
from medark.sources.db_audit_event import DbEvent
from medark.sources.mysql import audit_log as maria_log
from medark.sources.postgres import audit_log as pg_log
from medark.util import clock

BATCH = 2000
"""Events per transaction of the audit trail (each commit waits for the disk)."""
READ_BYTES = 4 << 20
FINGERPRINT_BYTES = 64
STATEMENT_LIMIT = 8000
"""Characters of a statement kept (a generated IN list can be megabytes)."""
REJECTED_LIMIT = (10, 0.01)
"""A pass rejecting more records than both (a count, a share of what it read) fails:
the log is not in the configured format, or the server writes another one."""
ALERT = "dbaudit_failed"
"""The alert condition of a source whose collection fails (scheduler/alerts.py)."""


@dataclass(frozen=True)
class AuditedSource:
    key: str
    """SYSTEM, or SYSTEM#N for the system's source N > 0."""
    system: str
    index: int
    type: str
    conf: DbAuditConf


def audited_sources(config: MedarkConfig, system: str | None = None
                    ) -> list[AuditedSource]:
    found = []
    for name in sorted(config.systems):
        if system is not None and name != system:
            continue
        for index, source in enumerate(config.systems[name].sources):
            if source.audit is not None:
                key = name if index == 0 else f"{name}#{index}"
                found.append(AuditedSource(key, name, index, source.type, source.audit))
    return found


@dataclass
class PassResult:
    source: str
    events: int = 0
    files: list[str] = field(default_factory=list)
    error: str | None = None
    rejected: int = 0
    """Records that were not log records (see REJECTED_LIMIT)."""
    first_rejected: str | None = None
    """FILE:OFFSET of the first of them."""

    def public(self) -> dict[str, Any]:
        return {"source": self.source, "events": self.events, "files": self.files,
                "error": self.error, "rejected": self.rejected}


@dataclass(frozen=True)
class _File:
    path: Path
    device: int
    inode: int
    size: int
    mtime_ns: int


def _candidates(conf: DbAuditConf) -> list[_File]:
    """The source's log files, oldest first: every file of the format in a directory,
    or the file and its rotated siblings (NAME.1, NAME-2024…)."""
    log = Path(conf.log)
    if log.is_dir():
        suffix = pg_log.SUFFIX.get(conf.format)
        paths = [p for p in log.iterdir() if p.is_file() and (
            p.name.endswith(suffix) if suffix else p.name.startswith("server_audit"))]
    else:
        paths = [p for p in log.parent.glob(log.name + "*") if p.is_file()] \
            if log.parent.is_dir() else []
    found = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue  # removed meanwhile
        found.append(_File(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    found.sort(key=lambda f: (f.mtime_ns, f.path.name))
    return found


def _fingerprint(path: Path, upto: int) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(min(upto, FINGERPRINT_BYTES))
    except OSError:
        return None
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:40]}"


def _same_start(path: Path, fingerprint: str | None) -> bool:
    if fingerprint is None:
        return True
    length = int(fingerprint.split(":", 1)[0])
    return _fingerprint(path, length) == fingerprint


class Collector:
    """Collects every audited source of a configuration into a catalog."""

    def __init__(self, config: MedarkConfig, catalog: Catalog,
                 sources: list[AuditedSource], alerter: Alerter | None = None) -> None:
        """`alerter`: each pass raises `dbaudit_failed:SOURCE` for a source whose pass
        failed (its log missing or unreadable, too many records rejected), once while
        it keeps failing, and resolves it at the first pass that succeeds."""
        self.catalog = catalog
        self.alerter = alerter
        self.zone: tzinfo = config.zone
        self.sources = sources
        states = load_states(catalog)
        self.states = {s.key: states.get(s.key) or CollectorState(s.key) for s in sources}
        for source in sources:
            self._reconcile(self.states[source.key])

    def _reconcile(self, state: CollectorState) -> None:
        """Resume after the newest stored event if the state was not saved after it."""
        newest = last_stored(self.catalog, state.source)
        if newest is None or newest.seq <= state.last_seq:
            return
        pos = str(newest.detail.get("pos", ""))
        parts = pos.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return
        device, inode, offset = (int(p) for p in parts)
        if (device, inode) != (state.device, state.inode):
            state.path = str(newest.detail.get("file") or state.path)
            state.fingerprint = None
        state.device, state.inode, state.offset = device, inode, offset
        state.last_seq = newest.seq
        state.notes.append(f"resumed after stored event {newest.seq} (state was behind)")

    def run_once(self) -> list[PassResult]:
        results = []
        for source in self.sources:
            state = self.states[source.key]
            result = PassResult(source.key)
            try:
                self._pass(source, state, result)
                result.error = _rejected_error(result)
            except OSError as exc:
                result.error = f"{exc.filename or source.conf.log}: {exc.strerror or exc}"
            state.last_error = result.error
            state.last_run_at = clock.now()
            save_state(self.catalog, state)
            if self.alerter is not None:
                self.alerter.dr_condition(ALERT, source.key, result.error)
            results.append(result)
        return results

    def follow(self, stop: threading.Event,
               on_pass: Callable[[list[PassResult]], None] | None = None) -> None:
        """Passes every `every` (the smallest of the sources') until `stop` is set."""
        every = min(s.conf.every for s in self.sources).total_seconds()
        while not stop.is_set():
            results = self.run_once()
            if on_pass is not None:
                on_pass(results)
            stop.wait(every)

    # ---- one source ---------------------------------------------------------------

    def _pass(self, source: AuditedSource, state: CollectorState,
              result: PassResult) -> None:
        if not Path(source.conf.log).exists():  # a wrong path is an error, not silence
            raise FileNotFoundError(2, "no such file or directory", source.conf.log)
        while True:
            files = _candidates(source.conf)
            if not files:
                return
            at = next((i for i, f in enumerate(files)
                       if (f.device, f.inode) == (state.device, state.inode)), None)
            if at is None:
                at = self._start_file(files, state)
            current = files[at]
            newer = at < len(files) - 1  # seen before reading: `current` is finished
            if state.offset > current.size or not _same_start(current.path,
                                                                  state.fingerprint):
                state.notes.append(f"{current.path} was truncated or recreated: read "
                                   "again from its start")
                state.offset, state.fingerprint = 0, None
            self._read(source, state, current, result, finished=newer)
            if not newer:
                return
            following = files[at + 1]
            state.path, state.device, state.inode = (str(following.path),
                                                     following.device, following.inode)
            state.offset, state.fingerprint = 0, None

    def _start_file(self, files: list[_File], state: CollectorState) -> int:
        """The file to read when the state's is not among them: the oldest for a new
        source; else (its file was removed) the oldest changed since the last event."""
        if state.device is not None:
            state.notes.append(f"{state.path} is gone: continuing with the files "
                               "written since")
            since = state.last_run_at
            at = next((i for i, f in enumerate(files) if since is None
                       or f.mtime_ns >= int(since.timestamp() * 1e9)), len(files) - 1)
        else:
            at = 0
        chosen = files[at]
        state.path, state.device, state.inode = (str(chosen.path), chosen.device,
                                                 chosen.inode)
        state.offset, state.fingerprint = 0, None
        return at

    def _read(self, source: AuditedSource, state: CollectorState, current: _File,
              result: PassResult, finished: bool) -> None:
        with open(current.path, "rb") as f:
            if os.fstat(f.fileno()).st_ino != current.inode:
                return  # replaced between the listing and the open: next pass
            if str(current.path) not in result.files:
                result.files.append(str(current.path))
            pending = b""
            f.seek(state.offset)
            while True:
                chunk = f.read(READ_BYTES)
                if not chunk:
                    break
                data = pending + chunk
                base = state.offset
                rejected: list[int] = []
                events, end = self._parse(source, data, base, rejected)
                if rejected and result.first_rejected is None:
                    result.first_rejected = f"{current.path}:{rejected[0]}"
                result.rejected += len(rejected)
                pending = data[end - base:]
                if events:
                    self._store(source, state, current, events)
                    result.events += len(events)
                state.offset = end
                if state.fingerprint is None or not state.fingerprint.startswith(
                        f"{FINGERPRINT_BYTES}:"):
                    state.fingerprint = _fingerprint(current.path, state.offset)
        if finished and pending:
            state.notes.append(f"{current.path}: an incomplete last record of "
                               f"{len(pending)} bytes was skipped (the file is finished)")
            state.offset += len(pending)

    def _parse(self, source: AuditedSource, data: bytes, base: int, rejected: list[int]
               ) -> tuple[list[DbEvent], int]:
        zone = ZoneInfo(source.conf.timezone) if source.conf.timezone else self.zone
        if source.conf.format == "server_audit":
            return maria_log.parse(data, base, zone, source.conf.mask, rejected)
        return pg_log.parse(data, base, source.conf.format, zone, source.conf.mask,
                            rejected)

    def _store(self, source: AuditedSource, state: CollectorState, current: _File,
               events: list[DbEvent]) -> None:
        for start in range(0, len(events), BATCH):
            batch = events[start:start + BATCH]
            where = (f"{current.device}:{current.inode}:", str(current.path))
            seqs = append_many(self.catalog, [_entry(source.key, where, e) for e in batch])
            last = batch[-1]
            state.offset = last.end
            state.events += len(batch)
            state.last_seq = seqs[-1]
            state.last_event_at = last.time
            state.fingerprint = state.fingerprint or _fingerprint(current.path, last.end)
            # the state is saved once per pass (run_once): a collector killed meanwhile
            # resumes from the newest stored event (_reconcile), not from the state


def _rejected_error(result: PassResult) -> str | None:
    count, share = REJECTED_LIMIT
    if result.rejected <= count or result.rejected <= share * (result.events
                                                               + result.rejected):
        return None
    return (f"{result.rejected} of {result.events + result.rejected} records are not "
            f"log records of the configured format (the first at {result.first_rejected})")


def _entry(key: str, where: tuple[str, str], event: DbEvent) -> AuditEntry:
    """`where`: the file's "device:inode:" and path, made once per batch."""
    statement = event.statement
    detail: dict[str, Any] = {
        "time": event.time.isoformat(), "database": event.database,
        "object": event.object, "class": event.cls, "command": event.command,
        "statement": statement[:STATEMENT_LIMIT], "application": event.application,
        "rows": event.rows, "conn": event.session,
        "pos": f"{where[0]}{event.end}", "file": where[1]}
    if len(statement) > STATEMENT_LIMIT:
        detail["statement_chars"] = len(statement)
    target = f"{key}/{event.database}/{event.object}"
    return AuditEntry(actor=(ACTOR_PREFIX + (event.user or "?"))[:200],
                      source=(event.client or "unknown")[:255],
                      action=ACTION_PREFIX + event.cls.lower(), target=target[:500],
                      result="failed" if event.result == "failed" else "ok",
                      detail=detail)
