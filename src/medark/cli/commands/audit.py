"""`medark audit verify|export|anchor`: the tamper-evident audit trail in the catalog
(docs/audit.md).

verify walks the chain and names every edited, deleted, inserted or reordered record
(exit 31 when it finds one); with --repo it also checks the anchors stored there.
export writes the records of a time range as JSON lines or CSV. anchor stores the chain
head in the repository (--repo), where a WORM store keeps it out of the catalog
administrator's reach."""

from __future__ import annotations

import argparse
import getpass
import io
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.errors import AuditTrailBroken, UsageError

if TYPE_CHECKING:
    from medark.catalog.store import Catalog
    from medark.cli.context import Context
    from medark.service.audit_anchor import Unreadable

ACTIONS = ("verify", "export", "anchor")
FORMATS = ("jsonl", "csv")
"""As catalog/audit_export.py FORMATS (not imported: `--help` loads no catalog code)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS,
                   help="verify (the chain; with --repo its anchors too), export (records "
                   "of a time range), anchor (store the chain head in --repo)")
    p.add_argument("--key-file", action="append", default=[], metavar="FILE",
                   help="verify: an audit signing key (repeat for keys used before a "
                   "rotation; default $MEDARK_AUDIT_KEY_FILE, else beside a SQLite catalog)")
    p.add_argument("--from", dest="start", metavar="TIME",
                   help="export: from this time (ISO 8601; without a zone UTC)")
    p.add_argument("--to", dest="end", metavar="TIME",
                   help="export: until this time, excluded (a date alone: through that day)")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="export: JSON lines (default) or CSV")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="export: write to FILE (mode 0600) instead of standard output")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.config import environment as env
    from medark.service.catalog_access import opened_catalog  # SQLAlchemy: not at --help

    args = ctx.args
    if args.action != "export" and (args.start or args.end or args.output):
        raise UsageError(f"--from, --to and --output are for `audit export`, not "
                         f"`audit {args.action}`")
    given = args.catalog or env.CATALOG.get()  # a plan file only when neither names one
    config = None
    if not given:
        from medark.service.plans import config_path, load_plans  # pydantic: only for it

        config = load_plans(config_path(args.config))
    with opened_catalog(config, given) as catalog:
        if args.action == "verify":
            return _verify(ctx, catalog)
        if args.action == "export":
            return _export(ctx, catalog)
        return _anchor(ctx, catalog)


def _keys(ctx: Context, catalog: Catalog) -> list[bytes]:
    from medark.catalog.audit_key import default_key_file, read_key
    from medark.catalog.audit_trail import (
        AuditSettings,
        read_head,
    )
    from medark.errors import CatalogError

    given = [Path(f) for f in ctx.args.key_file]
    if not given:
        path = AuditSettings.from_environment().key_file or default_key_file(catalog.url)
        if not path.exists() and read_head(catalog).seq == 0:
            return []  # an empty trail: nothing signed yet, no key made yet
        if not path.exists():
            raise CatalogError(f"audit key {path} is missing: give the key that signs the "
                               "trail with --key-file or MEDARK_AUDIT_KEY_FILE")
        given = [path]
    return [read_key(p) for p in given]


def _verify(ctx: Context, catalog: Catalog) -> int:
    from medark.catalog.audit_trail import snapshot
    from medark.catalog.audit_verify import Finding, verify

    keys = _keys(ctx, catalog)
    anchors = None
    unreadable: list[Unreadable] = []
    if getattr(ctx.args, "repo", None):  # explicit: MEDARK_REPO alone checks no anchors
        from medark.service.audit_anchor import anchors as stored_anchors

        with ctx.repository(lock=None, command="audit verify") as repo:
            anchors, unreadable = stored_anchors(repo)
    before, rows, after = snapshot(catalog)
    report = verify(before, rows, after, keys, anchors)
    report.findings += [Finding(0, "anchor", f"{u.name} cannot be read: {u.reason}")
                        for u in unreadable]
    if ctx.out.as_json:
        ctx.out.json(report.public())
    else:
        for finding in report.findings:
            ctx.out.text(finding.line())
        anchored = ""
        if anchors is not None:
            anchored = (f", {report.anchors} anchors up to record {report.anchored_seq}"
                        if report.anchors else ", no anchor in the repository")
        state = ("intact" if report.intact else
                 f"{len(report.findings)} problem{'s' if len(report.findings) != 1 else ''}")
        ctx.out.text(f"audit trail {report.chain}: {report.records} records, head "
                     f"{report.head}{anchored}: {state}")
    if not report.intact:
        error = AuditTrailBroken(f"audit trail: {len(report.findings)} records edited, "
                                 "deleted, inserted or reordered (listed above)")
        error.in_output = True
        raise error
    return 0


def _moment(text: str, end: bool) -> datetime:
    try:
        if len(text) == 10:  # a date: its midnight, or for --to the next one
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{'--to' if end else '--from'} {text!r}: give an ISO 8601 time "
                         "(2026-12-01 or 2026-12-01T08:00:00+08:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _export(ctx: Context, catalog: Catalog) -> int:
    from medark.catalog.audit_export import export_header, export_line
    from medark.catalog.audit_trail import AuditEntry, append, read_records

    args = ctx.args
    start = _moment(args.start, False) if args.start else None
    end = _moment(args.end, True) if args.end else None
    if start is not None and end is not None and end <= start:
        raise UsageError("--to must be later than --from")
    out: TextIO
    if args.output:
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise UsageError(f"--output {args.output}: {exc.strerror}") from None
        out = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
    else:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                               write_through=True)
    count = 0
    try:
        out.write(export_header(args.format))
        for record in read_records(catalog, start, end):
            out.write(export_line(record, args.format))
            count += 1
        out.flush()
    finally:
        if args.output:
            out.close()
        else:
            out.detach()
    # exporting the trail is itself an audited action
    append(catalog, AuditEntry(f"cli:{getpass.getuser()}", "cli", "audit.export",
                               detail={"from": args.start, "to": args.end,
                                       "format": args.format, "records": count}))
    if args.output:
        ctx.out.warn(f"exported {count} audit records to {args.output}")
    return 0


def _anchor(ctx: Context, catalog: Catalog) -> int:
    from medark.service.audit_anchor import anchor
    from medark.util import clock

    with ctx.repository(lock="shared", command="audit anchor") as repo:
        done = anchor(catalog, repo, f"cli:{getpass.getuser()}", "cli")
    if ctx.out.as_json:
        ctx.out.json({"message_type": "audit_anchor", "chain": done.anchor.chain,
                      "seq": done.anchor.seq, "hash": done.anchor.hash,
                      "object": done.name, "record": done.record,
                      "anchored_at": clock.format_time(done.anchor.anchored_at)})
    else:
        ctx.out.text(f"anchored audit record {done.anchor.seq} ({done.anchor.hash[:16]}…) "
                     f"as {done.name}; noted as record {done.record}")
    return 0


COMMAND = Command("audit", "verify, export and anchor the tamper-evident audit trail",
                  add_arguments, run)
