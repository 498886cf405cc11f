"""A database source's `audit` table (config/dbaudit.py): mistakes reported with their
line, and the allow list and working hours as the analysis reads them."""

from __future__ import annotations

from datetime import time

import pytest

from medark.config.dbaudit import DbAuditConf, parse_hours
from medark.config.loader import load_text
from medark.errors import ConfigInvalid

BASE = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/srv/repo"

[systems.his]
owner = "it"

[[systems.his.sources]]
type = "{type}"
dsn = "host=db"
paths = ["/data"]
audit = {audit}

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""


def problems(audit: str, source_type: str = "postgres") -> str:
    with pytest.raises(ConfigInvalid) as caught:
        load_text(BASE.format(type=source_type, audit=audit), "medark.toml")
    return str(caught.value)


def test_mistakes_are_reported_with_their_line() -> None:
    assert "medark.toml:15: systems.his.sources[0].audit.allow" in problems(
        '{ log = "/l", format = "csvlog", allow = ["10.0.0/33"] }')
    assert "not a network" in problems('{ log = "/l", format = "csvlog", allow = ["x"] }')
    assert "working_hours" in problems('{ log = "/l", format = "csvlog", working_hours = "8-18" }')
    assert "not a mariadb log" in problems('{ log = "/l", format = "csvlog" }', "mariadb")
    assert "only postgres and mariadb" in problems('{ log = "/l", format = "csvlog" }', "files")
    assert "unknown time zone" in problems('{ log = "/l", format = "jsonlog", timezone = "Mars" }')
    config = load_text(BASE.format(type="mariadb", audit='{ log = "/l", format = '
                                   '"server_audit", every = "5s" }'))
    audit = config.systems["his"].sources[0].audit
    assert audit is not None and audit.every.total_seconds() == 5 and audit.mask


def test_allow_list_and_hours() -> None:
    conf = DbAuditConf(log="/l", format="csvlog", allow=["10.0.0.0/8", "local", "::1/128"])
    assert conf.allows("10.2.3.4") and conf.allows("local") and conf.allows("::1")
    assert not conf.allows("192.168.1.1") and not conf.allows("db-client.example")
    assert DbAuditConf(log="/l", format="csvlog").allows("192.168.1.1")  # no list: any
    assert parse_hours("22:00-06:30:15") == (time(22), time(6, 30, 15))
