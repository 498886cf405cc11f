"""`medark config check [--config FILE]`: validate the protection configuration.

Reports every problem at once, one line each, as `file:line: key.path: what is wrong`
(unknown keys, bad schedules and durations, references to undefined sites, systems or
repositories, retention shorter than the medical-record minimum); exit 15 when there is
any, 0 with a one-line summary when there is none.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_config_option

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"], help="check: validate the file")
    add_config_option(p)


def run(ctx: Context) -> int:
    from medark.service.plans import config_path, load_plans  # pydantic: not at --help

    path = config_path(ctx.args.config)
    config = load_plans(path)
    counts = {"sites": len(config.sites), "repositories": len(config.repositories),
              "systems": len(config.systems), "plans": len(config.plans)}
    if config.dr:
        counts["dr_systems"] = len(config.dr)
    if ctx.out.as_json:
        ctx.out.json({"message_type": "config_valid", "path": str(path), **counts})
    else:
        ctx.out.text(f"{path}: valid: " + ", ".join(f"{n} {_NOUNS[k][n != 1]}"
                                                      for k, n in counts.items()))
    return 0


_NOUNS = {"sites": ("site", "sites"), "repositories": ("repository", "repositories"),
          "systems": ("system", "systems"), "plans": ("plan", "plans"),
          "dr_systems": ("DR system", "DR systems")}

COMMAND = Command("config", "validate the protection configuration file", add_arguments, run)
