"""`medark compliance --profile 三甲 --level 3 [--sichuan]`: every system × requirement,
judged by design (the plans) and by measurement (the jobs), pass / warn / fail / not
covered, with the evidence. Exit 0 only when no "must" requirement fails (else 17)."""

from __future__ import annotations

import argparse
from collections import Counter

from medark.cli.command import Command
from medark.cli.commands.config import add_config_option
from medark.cli.commands.run import add_catalog_option
from medark.cli.context import Context
from medark.errors import ComplianceFailed, UsageError
from medark.policy.compliance import NOT_COVERED, failed_musts
from medark.service.compliance import compliance
from medark.service.jobs import opened_catalog
from medark.service.plans import config_path, load_plans
from medark.util import clock


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, metavar="TIER",
                   help="hospital tier: 二级, 三乙 or 三甲 (secondary, tertiary-b, "
                   "tertiary-a), or a custom profile of the configuration (profiles.NAME)")
    p.add_argument("--level", type=int, required=True, choices=[1, 2, 3, 4],
                   help="等保 2.0 level")
    p.add_argument("--sichuan", action="store_true",
                   help="add the Sichuan smart-hospital evaluation items")
    p.add_argument("--at", metavar="TIME",
                   help="judge as of this moment (ISO 8601; default now): jobs started "
                   "later are not counted, ages are measured to it")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    args = ctx.args
    config = load_plans(config_path(args.config))
    try:
        at = clock.parse_time(args.at) if args.at else clock.now()
        with opened_catalog(config, args.catalog) as catalog:
            verdicts = compliance(config, catalog, args.profile, args.level, args.sichuan,
                                  at)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    failing = failed_musts(verdicts)
    counts = Counter(v.status for v in verdicts)
    uncovered = [v for v in verdicts if v.requirement.must and v.status == NOT_COVERED]
    if ctx.out.as_json:
        ctx.out.json({"message_type": "compliance", "profile": args.profile,
                      "level": args.level, "sichuan": args.sichuan,
                      "compliant": not failing, "counts": dict(counts),
                      "must_not_covered": len(uncovered),
                      "verdicts": [v.public() for v in verdicts]})
    else:
        for v in verdicts:
            must = "must" if v.requirement.must else "rec."
            ctx.out.text(f"{v.system:<10} {v.status.upper():<12} {must:<5} "
                         f"{v.requirement.title}")
            ctx.out.text(f"{'':<10} design: {v.design.evidence}; measured: "
                         f"{v.measured.evidence}")
        ctx.out.text(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        if uncovered:
            ctx.out.text(f"{len(uncovered)} \"must\" requirement(s) not covered: Medark "
                         "cannot provide or measure them yet (listed above)")
    if failing:
        failing_err = ComplianceFailed(
            f"{len(failing)} \"must\" requirement(s) fail: " + "; ".join(
                f"{v.system} {v.requirement.id}" for v in failing[:5]))
        failing_err.in_output = ctx.out.as_json
        raise failing_err
    return 0


COMMAND = Command("compliance", "judge the plans and their measured results against a "
                  "hospital tier and 等保 level", add_arguments, run)
