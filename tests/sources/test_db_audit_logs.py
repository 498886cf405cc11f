"""The database audit log parsers (sources/postgres/audit_log.py, sources/mysql/
audit_log.py, sources/db_audit_event.py) on lines as PostgreSQL 15 with pgaudit 1.7 and
MariaDB 10.11's server_audit write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from medark.sources.db_audit_event import (
    classify,
    classify_command,
    command_of,
    copy_direction,
    mask,
    object_of,
)
from medark.sources.mysql import audit_log as maria
from medark.sources.postgres import audit_log as pg

CSV = (
    # pgaudit, a statement spanning lines with a quoted comma and a doubled quote
    '2026-12-06 09:15:02.123 UTC,"nurse","his",4242,"10.1.2.3:51234",6752c1a2.1092,3,'
    '"SELECT","2026-12-06 09:15:01 UTC",3/7,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,'
    'TABLE,public.patients,""SELECT name, id\nFROM patients\nWHERE name = \'O\'\'Brien, '
    'J\' AND id > 42"",<not logged>,17",,,,,,,,,"psql","client backend",,0\n'
    # a GRANT
    '2026-12-06 09:16:00.000 UTC,"postgres","his",4243,"[local]",6752c1a2.1093,1,'
    '"GRANT","2026-12-06 09:15:59 UTC",4/2,0,LOG,00000,"AUDIT: SESSION,1,1,ROLE,GRANT,,,'
    '""GRANT SELECT ON patients TO analyst"",<not logged>,",,,,,,,,,"psql",'
    '"client backend",,0\n'
    # COPY TO
    '2026-12-06 09:17:00.000 UTC,"analyst","his",4244,"10.9.9.9:40000",6752c1a2.1094,2,'
    '"COPY","2026-12-06 09:16:59 UTC",5/2,0,LOG,00000,"AUDIT: SESSION,1,1,READ,COPY,'
    'TABLE,public.patients,""COPY patients TO STDOUT WITH (FORMAT csv)"",<not logged>,'
    '5000",,,,,,,,,"pg_dump-ish","client backend",,0\n'
    # a failed login
    '2026-12-06 02:00:00.000 UTC,"mallory","his",4245,"192.168.7.7:40001",6752c1a2.1095,1,'
    '"authentication","2026-12-06 02:00:00 UTC",6/1,0,FATAL,28P01,"password '
    'authentication failed for user ""mallory""","Connection matched pg_hba.conf line 5"'
    ',,,,,,,,"","client backend",,0\n'
    # connection authorized, a plain log_statement line, a checkpoint (skipped)
    '2026-12-06 09:18:00.000 UTC,"nurse","his",4246,"10.1.2.3:40002",6752c1a2.1096,2,'
    '"authentication","2026-12-06 09:18:00 UTC",7/1,0,LOG,00000,"connection authorized:'
    ' user=nurse database=his application_name=HIS-Client",,,,,,,,,"","client backend",'
    ',0\n'
    '2026-12-06 09:18:01.000 UTC,"nurse","his",4246,"10.1.2.3:40002",6752c1a2.1096,3,'
    '"idle","2026-12-06 09:18:00 UTC",7/2,0,LOG,00000,"statement: update orders set '
    'state = \'done\' where id = 7",,,,,,,,,"HIS-Client","client backend",,0\n'
    '2026-12-06 09:19:00.000 UTC,,,4000,,6752c1a2.1000,1,,2026-12-06 09:00:00 UTC,,0,LOG,'
    '00000,"checkpoint starting: time",,,,,,,,,"","checkpointer",,0\n'
)


def test_csvlog_records_classes_rows_and_masking() -> None:
    data = CSV.encode()
    events, end = pg.parse(data, 100, "csvlog")
    assert end == 100 + len(data)
    read, grant, copy, failed, connect, update = events
    assert (read.user, read.client, read.database, read.cls, read.object, read.rows) == (
        "nurse", "10.1.2.3", "his", "READ", "public.patients", 17)
    assert read.statement == "SELECT name, id\nFROM patients\nWHERE name = '?' AND id > ?"
    assert read.time == datetime(2026, 12, 6, 9, 15, 2, 123000, tzinfo=UTC)
    assert read.application == "psql"
    assert (grant.cls, grant.command, grant.client) == ("ROLE", "GRANT", "local")
    assert (copy.cls, copy.rows, copy.application) == ("EXPORT", 5000, "pg_dump-ish")
    assert (failed.cls, failed.user, failed.client, failed.result) == (
        "FAILED_LOGIN", "mallory", "192.168.7.7", "failed")
    assert (connect.cls, connect.application) == ("CONNECT", "HIS-Client")
    assert (update.cls, update.object, update.statement) == (
        "WRITE", "orders", "update orders set state = '?' where id = ?")
    assert [e.end for e in events] == sorted(e.end for e in events)
    unmasked, _ = pg.parse(data, 0, "csvlog", masked=False)
    assert "O''Brien, J" in unmasked[0].statement


def test_csvlog_incomplete_record_is_left_for_later() -> None:
    data = CSV.encode()
    cut = data.index(b"FROM patients") + 3  # inside the first record's quoted statement
    events, end = pg.parse(data[:cut], 0, "csvlog")
    assert (events, end) == ([], 0)
    first_end = data.index(b"\n", data.index(b'"psql","client backend"')) + 1
    events, end = pg.parse(data[:first_end + 10], 0, "csvlog")
    assert len(events) == 1 and end == first_end
    rest, end2 = pg.parse(data[end:], end, "csvlog")
    assert len(rest) == 5 and end2 == len(data)


def test_jsonlog_lines() -> None:
    lines = [
        {"timestamp": "2026-12-06 17:15:02.123 +08", "user": "nurse", "dbname": "his",
         "pid": 1, "remote_host": "10.1.2.3", "remote_port": 5000, "session_id": "a.1",
         "error_severity": "LOG", "state_code": "00000",
         "message": 'AUDIT: SESSION,2,1,DDL,ALTER TABLE,TABLE,public.patients,"ALTER '
                    'TABLE patients ADD COLUMN note text",<not logged>',
         "application_name": "psql", "backend_type": "client backend"},
        {"timestamp": "2026-12-06 09:15:03.000 UTC", "user": "bob", "dbname": "his",
         "remote_host": "[local]", "error_severity": "FATAL", "state_code": "28000",
         "message": 'role "bob" does not exist'},
    ]
    import json
    data = "".join(json.dumps(line) + "\n" for line in lines).encode() + b'{"partial'
    events, end = pg.parse(data, 0, "jsonlog")
    assert end == data.index(b'{"partial')
    ddl, failed = events
    assert (ddl.cls, ddl.command, ddl.object) == ("DDL", "ALTER TABLE", "public.patients")
    assert ddl.time == datetime(2026, 12, 6, 9, 15, 2, 123000, tzinfo=UTC)
    assert (failed.cls, failed.user, failed.client) == ("FAILED_LOGIN", "bob", "local")


def test_server_audit_lines() -> None:
    shanghai = timezone(timedelta(hours=8))
    text = (
        "20261206 09:00:01,db1,nurse,10.1.2.3,12,0,CONNECT,his,,0\n"
        "20261206 09:00:02,db1,nurse,10.1.2.3,12,35,QUERY,his,'SELECT * FROM patients "
        "WHERE name = \\'Li, Wei\\' AND age > 60',0\n"
        "20261206 09:00:03,db1,root,localhost,13,36,QUERY,his,'GRANT SELECT ON his.* TO "
        "\\'analyst\\'@\\'%\\'',0\n"
        "20261206 09:00:04,db1,analyst,10.9.9.9,14,37,QUERY,his,'SELECT * FROM patients "
        "INTO OUTFILE \\'/tmp/x.csv\\'',0\n"
        "20261206 02:00:00,db1,mallory,192.168.7.7,15,0,FAILED_CONNECT,,,1045\n"
        "20261206 09:00:05,db1,nurse,10.1.2.3,12,38,QUERY,his,'DROP TABLE orders',1051\n"
        "20261206 09:00:06,db1,nurse,10.1.2.3,12,0,DISCONNECT,his,,0\n"
        "20261206 09:00:07,db1,nurse,10.1.2.3,16,0,CONN"
    )
    data = text.encode()
    events, end = maria.parse(data, 7, shanghai)
    assert end == 7 + data.rindex(b"\n") + 1
    connect, read, grant, export, failed, drop, disconnect = events
    assert (connect.cls, connect.user, connect.client) == ("CONNECT", "nurse", "10.1.2.3")
    assert read.time == datetime(2026, 12, 6, 1, 0, 2, tzinfo=UTC)
    assert (read.cls, read.object, read.statement) == (
        "READ", "his.patients", "SELECT * FROM patients WHERE name = '?' AND age > ?")
    assert (grant.cls, grant.client) == ("ROLE", "local")
    assert export.cls == "EXPORT"
    assert (failed.cls, failed.user, failed.statement) == ("FAILED_LOGIN", "mallory",
                                                           "error 1045")
    assert (drop.cls, drop.result) == ("DDL", "failed")
    assert disconnect.cls == "DISCONNECT"


def test_classify_mask_and_objects() -> None:
    assert classify("/* app */ COPY (SELECT * FROM p WHERE a = 'x') TO STDOUT") == "EXPORT"
    assert classify("copy patients from stdin") == "WRITE"
    assert copy_direction("COPY public.p (a, b) TO '/tmp/x'") == "TO"
    assert classify("CREATE ROLE analyst LOGIN") == "ROLE"
    assert classify("create table t (a int)") == "DDL"
    assert classify("with x as (select 1) select * from x") == "READ"
    assert classify("vacuum") == "MISC"
    assert mask("select 'a''b', 3.5e2, col1, \"Col 2\", $$x$$ from t where id=-7") == \
        "select '?', ?, col1, \"Col 2\", '?' from t where id=?"
    assert object_of('SELECT * FROM "Emr"."Notes" n JOIN x ON 1=1') == "Emr.Notes"


@pytest.mark.parametrize("statement", [
    "SELECT 1", "  grant select on t to u", "/* a */ /* b */ DROP TABLE t",
    "-- c\nCOPY t TO STDOUT", "/* x */ COPY (SELECT 1) TO '/tmp/f'", "create role r",
    "", "   ", "/* unterminated", "CALL p()", "WITH x AS (SELECT 1) SELECT * FROM x",
    "SELECT * INTO OUTFILE '/tmp/x' FROM t", "\t\nALTER TABLE t ADD c int"])
def test_classify_command_is_classify_and_command_of(statement: str) -> None:
    assert classify_command(statement) == (classify(statement), command_of(statement))
