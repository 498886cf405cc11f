"""`medark dbaudit collect|search|report|status`: the database audit trail
(docs/dbaudit.md).

collect reads what the audited database servers logged since the last pass into the
catalog's audit trail (--follow: until SIGTERM, as the daemon runs it); search lists
stored events by user, time, object, class and database; report is the month's
analysis (privilege changes, DDL on clinical tables, bulk reads, access outside working
hours, failed logins, unknown addresses, new client programs), each finding citing its
events; status shows each source's collector."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.errors import UsageError

if TYPE_CHECKING:
    from medark.cli.context import Context

ACTIONS = ("collect", "search", "report", "status")
CLASSES = ("READ", "WRITE", "DDL", "ROLE", "EXPORT", "FUNCTION", "MISC", "CONNECT",
           "DISCONNECT", "FAILED_LOGIN")
"""As sources/db_audit_event.py CLASSES (not imported: `--help` loads no more)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS,
                   help="collect (new log lines into the audit trail), search (stored "
                   "events), report (a month's analysis), status (each collector)")
    p.add_argument("--follow", action="store_true",
                   help="collect: keep collecting every `every` until SIGTERM")
    p.add_argument("--system", help="only this system's sources")
    p.add_argument("--user", help="search: events of this database user")
    p.add_argument("--since", metavar="TIME", help="search: events from this time (ISO "
                   "8601; without a zone the configuration's)")
    p.add_argument("--until", metavar="TIME", help="search: events before this time")
    p.add_argument("--object", help="search: events whose object contains this")
    p.add_argument("--class", dest="cls", type=str.upper, choices=CLASSES,
                   help="search: events of this class")
    p.add_argument("--database", help="search: events in this database")
    p.add_argument("--last", type=int, default=1000, metavar="N",
                   help="search: only the newest N (default 1000; 0: all)")
    p.add_argument("--month", metavar="YYYY-MM", help="report: the month analysed")
    p.add_argument("--lang", choices=("zh", "en"), help="report: language (default the "
                   "configuration's hospital.language, else Chinese)")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.catalog_access import opened_catalog
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    if args.action != "report" and (args.month or args.lang):
        raise UsageError("--month and --lang are for `dbaudit report`")
    if args.action == "report" and not (args.month and re.fullmatch(
            r"\d{4}-(0[1-9]|1[0-2])", args.month)):
        raise UsageError("`dbaudit report` needs --month YYYY-MM")
    if args.follow and args.action != "collect":
        raise UsageError("--follow is for `dbaudit collect`")
    config = load_plans(config_path(args.config))
    with opened_catalog(config, args.catalog) as catalog:
        if args.action == "collect":
            return _collect(ctx, config, catalog)
        if args.action == "search":
            return _search(ctx, config, catalog)
        if args.action == "report":
            return _report(ctx, config, catalog)
        return _status(ctx, config, catalog)


def _collect(ctx: Context, config: Any, catalog: Any) -> int:
    from medark.scheduler.alerts import Alerter
    from medark.service.dbaudit import Collector, audited_sources

    sources = audited_sources(config, ctx.args.system)
    if not sources:
        raise UsageError("no database source has an `audit` table"
                         + (f" in system {ctx.args.system}" if ctx.args.system else "")
                         + " (docs/dbaudit.md)")
    alerter = Alerter(config, catalog, lambda _kind, _doc: None)  # dbaudit_failed:SOURCE
    try:
        return _run_collector(ctx, Collector(config, catalog, sources, alerter))
    finally:
        alerter.close(30.0)  # what is still unsent stays pending for the daemon


def _run_collector(ctx: Context, collector: Any) -> int:
    from medark.service.dbaudit import PassResult

    def show(results: list[PassResult]) -> None:
        for result in results:
            if ctx.out.as_json:
                ctx.out.json(result.public())
            elif result.events or result.error or not ctx.args.follow:
                ctx.out.text(f"{result.source}: {result.events} events"
                             + (f"; error: {result.error}" if result.error else ""))

    if not ctx.args.follow:
        results = collector.run_once()
        show(results)
        return 1 if any(r.error for r in results) else 0
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        collector.follow(stop, show)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _time(text: str | None, zone: Any) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a time (ISO 8601, e.g. 2026-12-06T09:00)") \
            from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _search(ctx: Context, config: Any, catalog: Any) -> int:
    from medark.catalog.dbaudit_state import events
    from medark.service.dbaudit_analysis import stored_event

    args = ctx.args
    since, until = _time(args.since, config.zone), _time(args.until, config.zone)
    found = []
    for record in events(catalog, since=since, system=args.system, user=args.user,
                         cls=args.cls):
        event = stored_event(record)
        if event is None or (since is not None and event.time < since) or (
                until is not None and event.time >= until):
            continue
        if args.object and args.object.lower() not in event.object.lower():
            continue
        if args.database and event.database != args.database:
            continue
        found.append(event)
    found = found[-args.last:] if args.last > 0 else found
    if ctx.out.as_json:
        ctx.out.json([{"id": e.seq, "time": e.time.isoformat(), "source": e.source,
                       "user": e.user, "client": e.client, "database": e.database,
                       "object": e.object, "class": e.cls, "command": e.command,
                       "statement": e.statement, "application": e.application,
                       "rows": e.rows, "result": e.result} for e in found])
        return 0
    for e in found:
        when = e.time.astimezone(config.zone).strftime("%Y-%m-%d %H:%M:%S")
        rows = f" rows={e.rows}" if e.rows is not None else ""
        ctx.out.text(f"#{e.seq} {when} {e.source} {e.user}@{e.client} {e.database} "
                     f"{e.cls} {e.object}{rows} {e.statement[:120]!r}")
    return 0


def _report(ctx: Context, config: Any, catalog: Any) -> int:
    from medark.service.dbaudit_analysis import TITLES, month_analysis

    analysis = month_analysis(config, catalog, ctx.args.month)
    if ctx.out.as_json:
        ctx.out.json(analysis.public())
        return 0
    language = ctx.args.lang or config.hospital.language or "zh"
    head = (f"{analysis.month}: {analysis.events} events, {len(analysis.findings)} "
            "findings" if language == "en" else
            f"{analysis.month}：{analysis.events} 条事件，{len(analysis.findings)} 项发现")
    ctx.out.text(head)
    for kind, findings in analysis.by_kind().items():
        ctx.out.text(f"{TITLES[language][kind]}: {len(findings)}")
        for finding in findings:
            ctx.out.text("  " + finding.line(language))
    for note in analysis.notes:
        ctx.out.text(note)
    return 0


def _status(ctx: Context, config: Any, catalog: Any) -> int:
    from medark.catalog.dbaudit_state import CollectorState, load_states
    from medark.service.dbaudit import audited_sources

    states = load_states(catalog)
    rows = [states.get(s.key) or CollectorState(s.key)
            for s in audited_sources(config, ctx.args.system)]
    if ctx.out.as_json:
        ctx.out.json([s.public() for s in rows])
        return 0
    from medark.util import clock

    now = clock.now()
    for s in rows:
        ran = f"{int((now - s.last_run_at).total_seconds())}s ago" if s.last_run_at \
            else "never"
        ctx.out.text(f"{s.source}: {s.events} events, last pass {ran}, {s.path or '-'} "
                     f"@{s.offset}" + (f"; error: {s.last_error}" if s.last_error else ""))
    return 0


COMMAND = Command("dbaudit", "the database audit trail: collect, search, monthly report",
                  add_arguments, run)
