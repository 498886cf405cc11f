"""`medark compliance [--profile 三甲] [--level 3] [--sichuan] [--lang zh|en]`: every system ×
requirement, judged by design (the plans) and by measurement (the jobs), pass / warn /
fail / not covered, with the evidence, in Chinese or English (cli/language.py). Exit 0
only when no "must" requirement fails (else 17)."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.language import add_lang_option, resolve_language
from medark.cli.output import columns
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.errors import ComplianceFailed, UsageError
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context
    from medark.policy.compliance import Verdict


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", metavar="TIER",
                   help="hospital tier: 二级, 三乙 or 三甲 (secondary, tertiary-b, "
                   "tertiary-a), or a custom profile of the configuration (profiles.NAME); "
                   "default: the configuration's [hospital] tier")
    p.add_argument("--level", type=int, choices=[1, 2, 3, 4],
                   help="等保 2.0 level (default: the configuration's [hospital] level)")
    p.add_argument("--sichuan", action="store_true", default=None,
                   help="add the Sichuan smart-hospital evaluation items (default: the "
                   "configuration's [hospital] sichuan)")
    p.add_argument("--at", metavar="TIME",
                   help="judge as of this moment (ISO 8601; default now): jobs started "
                   "later are not counted, ages are measured to it")
    add_lang_option(p, "en")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.policy.compliance import NOT_COVERED, failed_musts  # not at --help
    from medark.service.catalog_access import opened_catalog
    from medark.service.compliance import compliance
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    config = load_plans(config_path(args.config))
    language = resolve_language(args.lang, config, "en")
    # the hospital is described once, in the configuration, as the reports read it
    profile = args.profile or config.hospital.tier
    level = args.level or config.hospital.level
    sichuan = config.hospital.sichuan if args.sichuan is None else args.sichuan
    try:
        at = clock.parse_time(args.at) if args.at else clock.now()
        with opened_catalog(config, args.catalog) as catalog:
            verdicts = compliance(config, catalog, profile, level, sichuan, at)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    failing = failed_musts(verdicts)
    counts = Counter(v.status for v in verdicts)
    uncovered = [v for v in verdicts if v.requirement.must and v.status == NOT_COVERED]
    if ctx.out.as_json:
        ctx.out.json({"message_type": "compliance", "profile": profile,
                      "level": level, "sichuan": sichuan,
                      "lang": language, "compliant": not failing, "counts": dict(counts),
                      "must_not_covered": len(uncovered),
                      "verdicts": [v.public(language) for v in verdicts]})
    else:
        _print(ctx, verdicts, counts, len(uncovered), language)
    if failing:
        failing_err = ComplianceFailed(
            f"{len(failing)} \"must\" requirement(s) fail: " + "; ".join(
                f"{v.system} {v.requirement.id}" for v in failing[:5]))
        failing_err.in_output = ctx.out.as_json
        raise failing_err
    return 0


def _print(ctx: Context, verdicts: list[Verdict], counts: Counter[str], uncovered: int,
           language: str) -> None:
    from medark.policy.compliance_text import LABELS

    words = LABELS[language]
    for v in verdicts:
        must = words["must"] if v.requirement.must else words["rec"]
        # wrapped to 80 columns: the title under the title, the evidence under itself
        ctx.out.prose(f"{_pad(v.system, 10)} {_pad(words[v.status], 12)} {_pad(must, 5)} "
                      f"{v.title(language)}", indent=30)
        ctx.out.prose(f"{'':<10} {words['design']}{v.design.text(language)}{words['sep']}"
                      f"{words['measured']}{v.measured.text(language)}", indent=11)
    if language == "zh":
        ctx.out.text("，".join(f"{words[s]} {n}" for s, n in sorted(counts.items())))
        if uncovered:
            ctx.out.prose(f"{uncovered} 项“必须”要求未覆盖：Medark 尚不能提供或测量（见上）")
        return
    ctx.out.text(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if uncovered:
        ctx.out.prose(f"{uncovered} \"must\" requirement(s) not covered: Medark "
                      "cannot provide or measure them yet (listed above)")


def _pad(text: str, width: int) -> str:
    """Left-aligned to `width` terminal columns (a Chinese character takes two)."""
    return text + " " * max(width - columns(text), 0)


COMMAND = Command("compliance", "judge the plans and their measured results against a "
                  "hospital tier and 等保 level", add_arguments, run)
