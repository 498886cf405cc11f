"""MariaDB's server_audit plugin log (server_audit_output_type = file) read as database
audit events (docs/dbaudit.md). One line a record:

    timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode

`operation`: CONNECT, DISCONNECT, FAILED_CONNECT, QUERY (its object the statement in
single quotes, quotes inside escaped with a backslash; the plugin writes a statement's
newlines as spaces or escapes), and READ / WRITE / CREATE / ALTER / DROP / RENAME for
table events (the object a table). The time is the server's local time, without a
zone: the caller gives it.

Pure: bytes in, events out, each with the offset after its line; an incomplete last
line is left for the next read."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from medark.sources.db_audit_event import (
    CONNECT,
    DDL,
    DISCONNECT,
    FAILED_LOGIN,
    READ,
    WRITE,
    DbEvent,
    classify,
    command_of,
    mask,
    object_of,
)

FORMATS = ("server_audit",)
_TABLE_OPS = {"READ": READ, "WRITE": WRITE, "CREATE": DDL, "ALTER": DDL, "DROP": DDL,
              "RENAME": DDL}


def parse(data: bytes, base: int, zone: tzinfo = UTC, masked: bool = True,
          rejected: list[int] | None = None) -> tuple[list[DbEvent], int]:
    """The events of the complete lines of `data` (read at offset `base` of its file) and
    the offset after the last complete line. `rejected` gets the offset of each line
    that is not a server_audit record (too few fields, no time)."""
    events: list[DbEvent] = []
    start = 0
    while True:
        newline = data.find(b"\n", start)
        if newline < 0:
            break
        line = data[start:newline].decode("utf-8", "replace").rstrip("\r")
        begin, start = start, newline + 1
        event = parse_line(line, zone, masked, base + start)
        if event is not None:
            events.append(event)
        elif rejected is not None and line.strip() and not _readable(line):
            rejected.append(base + begin)
    return events, base + start


def _readable(line: str) -> bool:
    """A record of the plugin's form (even one of an operation not kept)."""
    head = line.split(",", 8)
    if len(head) < 9:
        return False
    try:
        datetime.strptime(head[0], "%Y%m%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        text = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            following = text[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(following, following))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_line(line: str, zone: tzinfo, masked: bool, end: int) -> DbEvent | None:
    head = line.split(",", 8)
    if len(head) < 9:
        return None
    stamp, _server, user, host, connection, _query_id, operation, database, rest = head
    obj, _, retcode = rest.rpartition(",")
    try:
        when = datetime.strptime(stamp, "%Y%m%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        return None
    operation = operation.upper()
    failed = retcode.strip() not in ("", "0")
    client = "local" if host in ("localhost", "") else host
    common: dict[str, Any] = {"time": when, "user": user, "client": client, "database": database,
              "session": connection, "end": end}
    if operation == "FAILED_CONNECT" or (operation == "CONNECT" and failed):
        return DbEvent(**common, cls=FAILED_LOGIN, command="LOGIN", result="failed",
                       statement=f"error {retcode.strip()}")
    if operation == "CONNECT":
        return DbEvent(**common, cls=CONNECT, command="CONNECT")
    if operation == "DISCONNECT":
        return DbEvent(**common, cls=DISCONNECT, command="DISCONNECT")
    if operation in _TABLE_OPS:
        return DbEvent(**common, cls=_TABLE_OPS[operation], command=operation,
                       object=f"{database}.{obj}" if database and obj else obj)
    if operation.startswith("QUERY"):
        statement = _unquote(obj)
        target = object_of(statement)
        if target and "." not in target and database:
            target = f"{database}.{target}"
        return DbEvent(**common, cls=classify(statement), command=command_of(statement),
                       object=target, statement=mask(statement) if masked else statement,
                       result="failed" if failed else "ok")
    return None
