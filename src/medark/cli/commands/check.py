"""`medark check`: verify the repository's structure and, with --read-data, every byte.

Exit 0 when no errors were found; 1 (RepositoryCorrupt) after naming every damaged
object and the snapshots and files it affects.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.output import CliProgress
from medark.errors import RepositoryCorrupt
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.engine.check import CheckResult, Problem


def add_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group()
    data.add_argument("--read-data", action="store_true",
                      help="also read every pack: SHA-256, decrypt and re-hash every blob")
    data.add_argument("--read-data-subset", metavar="N%|n/t",
                      help="read a random N%% of the packs, or group n of t (e.g. 1/5)")
    p.add_argument("--workers", type=int, default=0,
                   help="threads reading packs (default: one per core, at least 2)")


class _Reporter:
    """Prints each phase as it starts and each problem as it is found."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._progress: CliProgress | None = None

    def phase(self, title: str) -> CliProgress:
        self.close()
        self.ctx.out.text(title)
        self._progress = self.ctx.progress(title)
        return self._progress

    def problem(self, problem: Problem) -> None:
        if self.ctx.out.as_json:
            return  # the summary document carries every problem
        if not problem.error:
            self.ctx.out.text(problem.message)
        elif self._progress is not None:
            self._progress.warn(f"error: {problem.message}")
        else:
            self.ctx.out.warn(f"error: {problem.message}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None


def run(ctx: Context) -> int:
    from medark.engine.check import ALL_DATA, Checker, CheckOptions, parse_subset
    from medark.engine.worm import lock_report
    from medark.service.keys import unindexed_repository
    from medark.service.residency import repository_residency

    args = ctx.args
    subset = ALL_DATA if args.read_data else None
    if args.read_data_subset:
        subset = parse_subset(args.read_data_subset)
    options = CheckOptions(read_data=subset, workers=max(0, args.workers))
    reporter = _Reporter(ctx)
    workdir = ctx.cache_dir
    with unindexed_repository(ctx.location, ctx.repository_password(), "shared", "check",
                              ctx.out.warn) as repo:
        residency = repository_residency(repo)
        if not ctx.out.as_json:
            where = residency.location.describe() if residency.location else "unknown"
            ctx.out.text(f"location: {where}")
            ctx.out.prose(f"residency: {residency.verdict}: {residency.reason}")
        try:
            result = Checker(repo, options, reporter, workdir).run()
        finally:
            reporter.close()
        locks = lock_report(repo)
    if ctx.out.as_json:
        ctx.out.json({**result.summary(), **locks.public(),
                      "location": residency.location.to_doc() if residency.location else None,
                      "residency": residency.public()})
    else:
        _print_report(ctx, result)
        locks.print(ctx.out.text, ctx.out.warn)
    if not result.ok:
        n = len(result.errors)
        failure = RepositoryCorrupt(
            f"check found {n} error{'' if n == 1 else 's'}: the repository is damaged"
        )
        failure.in_output = ctx.out.as_json
        raise failure
    return 0


def _print_report(ctx: Context, result: CheckResult) -> None:
    out = ctx.out
    if result.stats.packs_read:
        out.text(f"read {result.stats.packs_read} packs, {format_bytes(result.stats.bytes_read)}")
    if result.damaged:
        out.text("damaged or missing blobs and what they affect:")
        for d in result.damaged:
            where = f"pack {d.pack}" if d.pack else "no pack (not in the index)"
            used = (f"snapshot {d.snapshot} {d.path}" if d.snapshot
                    else "not used by any snapshot")
            out.text(f"  blob {d.blob} in {where}: {used}")
    if result.broken_packs:
        out.text(f"broken packs: {', '.join(result.broken_packs)}")
        if result.read_data is None:
            out.text("only the pack headers were read: run `medark check --read-data` to tell "
                     "which blobs of the broken packs are really damaged")
    if result.ok:
        out.text("no errors were found")


COMMAND = Command("check", "verify the repository (structure, and with --read-data all data)",
                  add_arguments, run)
