"""PostgreSQL's csvlog and jsonlog (PG 15) read as database audit events
(docs/dbaudit.md): pgaudit's `AUDIT: SESSION,…` / `AUDIT: OBJECT,…` messages, the plain
`log_statement` lines, `log_connections` / `log_disconnections`, and authentication
failures. Other lines (checkpoints, errors of no one's statement) are skipped.

Pure: bytes in, events out, each with the offset after its record; an incomplete last
record (the server is writing it) is left for the next read. A csvlog record may span
lines (a statement's newlines are inside quotes): a record ends at the first newline
after an even number of quotes."""

from __future__ import annotations

import csv
import functools
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from medark.sources.db_audit_event import (
    CONNECT,
    DISCONNECT,
    EXPORT,
    FAILED_LOGIN,
    FUNCTION,
    MISC,
    READ,
    ROLE,
    WRITE,
    DbEvent,
    classify,
    classify_command,
    copy_direction,
    mask,
    object_of,
)

FORMATS = ("csvlog", "jsonlog")
SUFFIX = {"csvlog": ".csv", "jsonlog": ".json"}

# csvlog columns (PostgreSQL 14+; 13 lacks the last two, which are not read)
_TIME, _USER, _DB, _FROM, _SESSION, _SEVERITY, _STATE, _MESSAGE, _QUERY, _APP = (
    0, 1, 2, 4, 5, 11, 12, 13, 19, 22)
_AUTH_STATES = {"28P01", "28000"}
"""invalid_password, invalid_authorization_specification: a login refused."""
_PGAUDIT_CLASS = {"READ": READ, "WRITE": WRITE, "FUNCTION": FUNCTION, "ROLE": ROLE,
                  "DDL": "DDL", "MISC": MISC, "MISC_SET": MISC}
_STATEMENT = re.compile(r"^(?:duration: [\d.]+ ms\s+)?(?:statement|execute [^:]*): (.*)$",
                        re.DOTALL)
_FAILED_USER = re.compile(r'user "([^"]*)"')
_APPLICATION = re.compile(r"application_name=(\S+)")
_TIME_FORMAT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ?(\S*)$")


def parse(data: bytes, base: int, fmt: str, zone: tzinfo = UTC,
          masked: bool = True, rejected: list[int] | None = None
          ) -> tuple[list[DbEvent], int]:
    """The events of the complete records of `data` (read at offset `base` of its file)
    and the offset after the last complete record. `zone`: the server's log_timezone,
    for a zone abbreviation other than UTC/GMT or a numeric offset. `rejected` gets the
    offset of each record that is not a log record at all (too few fields, not JSON, no
    time); lines of no audit interest (a checkpoint) are skipped without a word."""
    events: list[DbEvent] = []
    end = base
    records = _csv_records(data) if fmt == "csvlog" else _lines(data)
    for raw, after in records:
        start, end = end, base + after
        fields = _csv_fields(raw) if fmt == "csvlog" else _json_fields(raw)
        if fields is None:
            if rejected is not None and raw.strip():
                rejected.append(start)
            continue
        event = _event(fields, zone, masked, end)
        if event is _UNREADABLE:
            if rejected is not None:
                rejected.append(start)
        elif event is not None:
            events.append(event)
    return events, end


def _csv_records(data: bytes) -> Iterator[tuple[bytes, int]]:
    start = 0
    search = 0
    while True:
        newline = data.find(b"\n", search)
        if newline < 0:
            return
        if data.count(b'"', start, newline) % 2:  # inside a quoted field: not the end
            search = newline + 1
            continue
        yield data[start:newline], newline + 1
        start = search = newline + 1


def _lines(data: bytes) -> Iterator[tuple[bytes, int]]:
    start = 0
    while True:
        newline = data.find(b"\n", start)
        if newline < 0:
            return
        yield data[start:newline], newline + 1
        start = newline + 1


class _Feed:
    """One record at a time into one csv.reader (a reader made per record cost more
    than reading it): the record splitter already found where each record ends."""

    def __init__(self) -> None:
        self.line: str | None = None
        self.reader = csv.reader(self, strict=False)

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line, self.line = self.line, None
        if line is None:
            raise StopIteration
        return line

    def row(self, text: str) -> list[str] | None:
        self.line = text
        try:
            return next(self.reader)
        except (csv.Error, StopIteration):
            self.reader = csv.reader(self, strict=False)  # a fresh one after an error
            return None


_feed = threading.local()


def _csv_row(text: str) -> list[str] | None:
    feed: _Feed | None = getattr(_feed, "feed", None)
    if feed is None:
        feed = _feed.feed = _Feed()
    return feed.row(text)


def _csv_fields(raw: bytes) -> dict[str, str] | None:
    row = _csv_row(raw.decode("utf-8", "replace"))
    if row is None:
        return None
    if len(row) <= _APP:
        return None
    host, _, _port = row[_FROM].rpartition(":") if row[_FROM] != "[local]" else (
        "[local]", "", "")
    return {"time": row[_TIME], "user": row[_USER], "database": row[_DB],
            "host": host, "session": row[_SESSION], "severity": row[_SEVERITY],
            "state": row[_STATE], "message": row[_MESSAGE], "query": row[_QUERY],
            "application": row[_APP]}


def _json_fields(raw: bytes) -> dict[str, str] | None:
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {"time": str(value.get("timestamp", "")), "user": str(value.get("user", "")),
            "database": str(value.get("dbname", "")),
            "host": str(value.get("remote_host", "")),
            "session": str(value.get("session_id", "")),
            "severity": str(value.get("error_severity", "")),
            "state": str(value.get("state_code", "")),
            "message": str(value.get("message", "")),
            "query": str(value.get("statement", "")),
            "application": str(value.get("application_name", ""))}


def parse_time(text: str, zone: tzinfo) -> datetime | None:
    m = _TIME_FORMAT.match(text.strip())
    if m is None:
        return None
    try:
        naive = datetime.fromisoformat(m.group(1))
    except ValueError:
        return None
    return naive.replace(tzinfo=_zone_of(m.group(2), zone))


_OFFSET = re.compile(r"([+-])(\d\d)(?::?(\d\d))?")


@functools.lru_cache(maxsize=64)
def _zone_of(name: str, zone: tzinfo) -> tzinfo:
    """The zone a log time's suffix names (a server writes one suffix: cached)."""
    if name in ("UTC", "GMT", "Z"):
        return UTC
    if name == "":
        return zone
    offset = _OFFSET.fullmatch(name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return timezone(sign * delta)
    return zone


_UNREADABLE = DbEvent(datetime.min.replace(tzinfo=UTC), "", "", "", MISC)
"""What `_event` returns for a record whose time cannot be read."""


def _event(f: dict[str, str], zone: tzinfo, masked: bool, end: int) -> DbEvent | None:
    message = f["message"]
    when = parse_time(f["time"], zone)
    if when is None:
        return _UNREADABLE
    client = "local" if f["host"] in ("[local]", "") else f["host"]
    common: dict[str, Any] = {
        "time": when, "user": f["user"], "client": client, "database": f["database"],
        "application": f["application"], "session": f["session"], "end": end}
    if message.startswith("AUDIT: "):
        return _pgaudit(message[7:], common, masked)
    if f["severity"] == "FATAL" and f["state"] in _AUTH_STATES:
        found = _FAILED_USER.search(message)
        user = f["user"] or (found.group(1) if found else "")
        return DbEvent(**{**common, "user": user}, cls=FAILED_LOGIN, command="LOGIN",
                       statement=message, result="failed")
    if message.startswith("connection authorized:"):
        app = _APPLICATION.search(message)
        return DbEvent(**{**common, "application": f["application"] or (
            app.group(1) if app else "")}, cls=CONNECT, command="CONNECT")
    if message.startswith("disconnection:"):
        return DbEvent(**common, cls=DISCONNECT, command="DISCONNECT")
    m = _STATEMENT.match(message)
    if m is not None and f["severity"] == "LOG":
        statement = m.group(1)
        cls, command = classify_command(statement)
        return DbEvent(**common, cls=cls, command=command,
                       object=object_of(statement),
                       statement=mask(statement) if masked else statement)
    return None


def _pgaudit(body: str, common: dict[str, Any], masked: bool) -> DbEvent | None:
    """AUDIT_TYPE,STATEMENT_ID,SUBSTATEMENT_ID,CLASS,COMMAND,OBJECT_TYPE,OBJECT_NAME,
    STATEMENT,PARAMETER[,ROWS] (ROWS with pgaudit.log_rows)."""
    try:
        row = next(csv.reader([body], strict=False))
    except (csv.Error, StopIteration):
        return None
    if len(row) < 8:
        return None
    pg_class, command, obj, statement = row[3], row[4], row[6], row[7]
    rows = None
    if len(row) >= 10 and row[9].strip().isdigit():
        rows = int(row[9])
    cls = _PGAUDIT_CLASS.get(pg_class, MISC)
    if command.upper() == "COPY" and copy_direction(statement) == "TO":
        cls = EXPORT
    elif command.upper() == "COPY":
        cls = WRITE
    elif cls in ("DDL", MISC) and classify(statement) == ROLE:
        cls = ROLE
    return DbEvent(**common, cls=cls, command=command.upper(), object=obj or object_of(statement),
                   statement=mask(statement) if masked else statement, rows=rows)
