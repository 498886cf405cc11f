"""`medark report monthly [--month YYYY-MM]` / `report quarterly [--quarter YYYY-QN]`
[--lang zh|en] [--output DIR]: the periodic reports (HTML and PDF), by default of the
last whole month or quarter, in the language cli/language.py resolves (Chinese unless
told otherwise). Refused (NotInstalled) without the renderer or a Chinese font. Monthly, the
data-security analysis: backup success rate and achieved RPO over time per system,
restore tests and their RTO, storage growth and deduplication, offsite copies, suspicious
snapshots and alerts, and the compliance table of the configured hospital tier and 等保
level as of the period's end (or now, for the current period). Quarterly, the same over
three months, with the DR and security events."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.language import add_lang_option, resolve_language
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["monthly", "quarterly"],
                   help="monthly: the data-security analysis; quarterly: with DR and "
                   "security events")
    p.add_argument("--month", metavar="YYYY-MM",
                   help="the month of a monthly report (default: the last whole month)")
    p.add_argument("--quarter", metavar="YYYY-QN",
                   help="the quarter of a quarterly report (default: the last whole quarter)")
    add_lang_option(p, "zh")
    p.add_argument("--output", default=".", metavar="DIR",
                   help="where report-YYYY-MM.html and .pdf go (default: here)")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.catalog_access import opened_catalog  # SQLAlchemy: not at --help
    from medark.service.plans import config_path, load_plans
    from medark.service.report_data import gather_period, previous_period
    from medark.service.report_fonts import cjk_font, load_renderer

    args = ctx.args
    write_report = load_renderer()
    font = cjk_font()
    config = load_plans(config_path(args.config))
    language = resolve_language(args.lang, config, "zh")
    now = clock.now()
    label = (args.quarter if args.kind == "quarterly" else args.month) or \
        previous_period(args.kind, now, config)
    with opened_catalog(config, args.catalog) as catalog:
        report = gather_period(config, catalog, args.kind, label, now)
        html, pdf = write_report(report, Path(args.output), font, language)
        from medark.service.access_audit import actor
        from medark.service.dbaudit_facts import note_report  # Sichuan 1.5.2's evidence

        note_report(catalog, actor(), args.kind, report.label, report.dbaudit is not None,
                    [str(html), str(pdf)])
    if ctx.out.as_json:
        ctx.out.json({"message_type": "report", "kind": args.kind, "period": report.label,
                      "lang": language,
                      "html": str(html), "pdf": str(pdf)})
    else:
        ctx.out.text(f"wrote {html} and {pdf}")
    return 0


COMMAND = Command("report", "write the monthly or quarterly report (HTML, PDF)",
                  add_arguments, run)
