"""The reports' access section from the audit trail, on SQLite and the running
PostgreSQL: grants summed per grant with their lifecycle listed, failed logins grouped by
address and account, administrators' actions counted per actor and listed (routine
records left out), only the period's records, and an empty period said to be empty; the
section rendered in Chinese and English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls

from medark.catalog.audit_query import count_between, records_between
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.store import Catalog
from medark.service import report_access
from medark.service.report_access import AccessSection, gather_access
from medark.service.report_data import PeriodReport
from medark.util import clock

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=KINDS)
def catalog(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "keys" / "audit.key"))
    for url in catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_access"):
        opened = Catalog(url)
        try:
            yield opened
        finally:
            opened.close()


def _grant(action: str, grant: int, result: str = "ok", actor: str = "li.na") -> AuditEntry:
    return AuditEntry(actor, "10.1.0.7", action, f"grant:{grant}", result, "county-b",
                      {"grant": grant, "from_institution": "county-a",
                       "to_institution": "county-b", "purpose": "会诊 consultation"})


def _fill(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    at = clock.FixedClock(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    monkeypatch.setattr(clock, "SYSTEM", at)
    # October: outside the period
    append(catalog, AuditEntry("root", "10.9.9.9", "user.create", "user:old"))
    append(catalog, AuditEntry("eve", "10.9.9.9", "login", "eve", "failed"))
    at.advance(7200)  # 2026-11-01 01:00
    entries = [
        _grant("grant.request", 7), _grant("grant.approve", 7, actor="sec.admin"),
        *[_grant("grant.use", 7) for _ in range(3)],
        _grant("grant.refused", 7, "denied"), _grant("grant.use", 9, "denied"),
        _grant("grant.expire", 7, actor="daemon"),
        AuditEntry("li.na", "10.1.0.7", "grant.refused", "county-c/his", "denied", "county-c",
                   {"grant": None, "from_institution": "county-b",
                    "to_institution": "county-c", "purpose": None, "use": "restore"}),
        *[AuditEntry("alice", "10.0.0.9", "login", "alice", "failed",
                     detail={"reason": "wrong password"}) for _ in range(3)],
        AuditEntry("alice", "10.0.0.9", "login", "alice", "denied", detail={"reason": "locked"}),
        AuditEntry("server", "10.0.0.9", "lockout", "alice", "ok"),
        AuditEntry("bob", "10.0.0.20", "login", "bob", "failed"),
        AuditEntry("bob", "10.0.0.20", "login", "bob", "ok"),
        AuditEntry("sec.admin", "10.0.0.5", "user.create", "carol", "ok", "county-a",
                   {"roles": ["operator"], "password": "never"}),
        AuditEntry("sec.admin", "10.0.0.5", "token.create", "carol"),
        AuditEntry("sys.admin", "10.0.0.6", "institution.create", "county-c"),
        AuditEntry("sec.admin", "10.0.0.5", "user.update", "root", "denied"),
        AuditEntry("daemon", "daemon", "audit.anchor", "repository:/x"),
        AuditEntry("cli:ops", "cli", "userx.create", "nobody"),
        AuditEntry("cli:ops", "cli", "restore", "snapshot:ab12"),
    ]
    for entry in entries:
        append(catalog, entry)
        at.advance(60)
    at.advance(40 * 86400)  # December: outside again
    append(catalog, AuditEntry("sec.admin", "10.0.0.5", "user.delete", "carol"))


def test_the_access_section_of_a_month(catalog: Catalog,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(catalog, monkeypatch)
    assert count_between(catalog, NOV, DEC) == 23
    assert [r.action for r in records_between(catalog, NOV, DEC, ["token.*", "login"])] == [
        "login"] * 6 + ["token.create"]
    access = gather_access(catalog, NOV, DEC)
    assert access.records == 23
    by_grant = {g.grant: g for g in access.grants}
    assert (by_grant["7"].uses, by_grant["7"].refused) == (3, 1)
    assert (by_grant["9"].uses, by_grant["9"].refused) == (0, 1)
    assert by_grant["7"].from_institution == "county-a"
    assert by_grant["7"].to_institution == "county-b"
    assert by_grant["7"].purpose == "会诊 consultation"
    assert [e.action for e in access.grant_events] == [
        "grant.request", "grant.approve", "grant.refused", "grant.use", "grant.expire",
        "grant.refused"]
    assert access.grant_events[0].note == "county-a → county-b · 会诊 consultation"
    assert access.grant_events[0].target == "grant:7"
    nothing = by_grant[""]  # refused for want of any grant
    assert (nothing.uses, nothing.refused, nothing.to_institution) == (0, 1, "county-c")
    assert access.grant_events[-1].note == "county-b → county-c"
    failed = [(f.source, f.account, f.failures, f.lockouts) for f in access.failed_logins]
    assert failed == [("10.0.0.9", "alice", 4, 1), ("10.0.0.20", "bob", 1, 0)]
    assert access.admin_counts == [("sec.admin", 4), ("sys.admin", 1)]
    assert [e.action for e in access.admin_actions] == [
        "grant.approve", "user.create", "token.create", "institution.create", "user.update"]
    created = access.admin_actions[1]
    assert "roles=['operator']" in created.note and "never" not in created.note
    assert access.admin_actions[-1].result == "denied"


def test_a_period_without_records(catalog: Catalog,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert gather_access(catalog, NOV, DEC).records == 0
    _fill(catalog, monkeypatch)
    empty = gather_access(catalog, DEC + timedelta(days=31), DEC + timedelta(days=59))
    assert empty.records == 0 and not empty.admin_counts and not empty.failed_logins


def test_long_lists_are_cut_and_counted(catalog: Catalog,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_access, "LIST_LIMIT", 3)
    monkeypatch.setattr(clock, "SYSTEM", clock.FixedClock(NOV + timedelta(days=3)))
    for i in range(5):
        append(catalog, AuditEntry("sec.admin", "10.0.0.5", "user.create", f"u{i}"))
        append(catalog, AuditEntry(f"u{i}", f"10.0.1.{i}", "login", f"u{i}", "failed"))
    access = gather_access(catalog, NOV, DEC)
    assert len(access.admin_actions) == 3 and access.admin_total == 5
    assert len(access.failed_logins) == 3 and access.failed_logins_total == 5


def _period(access: AccessSection | None) -> PeriodReport:
    return PeriodReport(kind="monthly", label="2026-11", hospital="示例县人民医院",
                        month=date(2026, 11, 1), start=NOV, end=DEC, generated=DEC,
                        systems=[], growth=[], repositories=[], suspicious=[], alerts=[],
                        verdicts=[], profile="三乙 / 等保 3", access=access)


def _section(html: str, start: str, end: str) -> str:
    body = html[html.index(start):html.index(end)]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


@pytest.mark.parametrize(("language", "heading", "after", "empty"), [
    ("zh", "7. 访问与操作审计", "8. 合规评估", "本周期审计日志中没有记录"),
    ("en", "7. Access and administration audit", "8. Compliance",
     "The audit trail has no records for this period"),
])
def test_the_section_renders_empty_and_cut(language: str, heading: str, after: str,
                                           empty: str) -> None:
    pytest.importorskip("matplotlib")
    from medark.service.report_fonts import cjk_font
    from medark.service.report_render import render_html

    for access in (None, AccessSection(0)):
        section = _section(render_html(_period(access), cjk_font(), language), heading,
                           after)
        assert empty in section and "<table" not in section, section
    at = NOV + timedelta(days=2)
    full = AccessSection(
        5000, failed_logins=[report_access.FailedLogins("10.0.0.9", "alice", 7, 1, at, at)],
        failed_logins_total=240, admin_counts=[("sec.admin", 201)],
        admin_actions=[report_access.Event(at, "sec.admin", "10.0.0.5", "user.create",
                                           "carol", "denied", "roles=['operator']")],
        admin_total=201)
    section = _section(render_html(_period(full), cjk_font(), language), heading, after)
    assert empty not in section
    assert "10.0.0.9 alice 7 1" in section and "sec.admin 201" in section, section
    more = {"zh": ("仅列出前 1 条，共 240 条", "仅列出前 1 条，共 201 条"),
            "en": ("The first 1 of 240 are listed", "The first 1 of 201 are listed")}
    assert all(words in section for words in more[language]), section
    assert ("拒绝" if language == "zh" else "denied") in section
