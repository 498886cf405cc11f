"""`medark prune`: remove data no snapshot uses any more (exclusive lock).

The write order that keeps a crashed prune safe is described in engine/prune.py.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.context import Context
from medark.util import clock
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.engine.prune_plan import PruneStats
    from medark.repo.repository import Repository


def add_prune_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `forget --prune`."""
    p.add_argument("--max-unused", default="5%", metavar="PERCENT",
                   help="tolerate this share of unused data instead of repacking partly used "
                        "packs: a percentage or 'unlimited' (default 5%%)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_prune_options(p)
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="only show what would be removed and repacked")


def run(ctx: Context) -> int:
    from medark.engine.prune_plan import parse_max_unused

    max_unused = parse_max_unused(ctx.args.max_unused)
    with ctx.repository(lock="exclusive", command="prune") as repo:
        stats = run_prune(ctx, repo, max_unused, ctx.args.dry_run)
    if ctx.out.as_json:
        ctx.out.json(summary_document(stats))
    else:
        print_report(ctx, stats)
    return 0


def run_prune(ctx: Context, repo: Repository, max_unused: float, dry_run: bool) -> PruneStats:
    """Prune an open, exclusively locked repository, drawing progress."""
    from medark.engine.prune import PruneOptions, prune

    progress = ctx.progress("prune")
    try:
        return prune(repo, PruneOptions(max_unused=max_unused, dry_run=dry_run),
                     work_dir=ctx.cache_dir, progress=progress)
    finally:
        progress.close()


def summary_document(stats: PruneStats) -> dict[str, object]:
    return {"message_type": "summary", **stats.public()}


def _row(label: str, packs: int | None, blobs: int | None, nbytes: int) -> str:
    packs_text = "" if packs is None else f"{packs} pack{'' if packs == 1 else 's'}"
    blobs_text = "" if blobs is None else f"{blobs} blob{'' if blobs == 1 else 's'}"
    return f"{label:<14}{packs_text:>12}{blobs_text:>14}{format_bytes(nbytes):>14}"


def print_locked(ctx: Context, s: PruneStats, limit: int = 20) -> None:
    """One line per object kept because it is locked (all of them with -v)."""
    shown = s.locked if ctx.out.verbose else s.locked[:limit]
    for name, until in shown:
        when = (f"until {clock.format_time(until)}" if until
                else "by a legal hold or an append-only server")
        ctx.out.text(f"{name} is locked {when}: kept")
    if len(s.locked) > len(shown):
        latest = max((u for _n, u in s.locked if u is not None), default=None)
        ctx.out.text(f"... and {len(s.locked) - len(shown)} more locked object(s) kept"
                     + (f" (until {clock.format_time(latest)} at the latest)" if latest else "")
                     + "; -v lists them")


def print_report(ctx: Context, s: PruneStats) -> None:
    out = ctx.out
    print_locked(ctx, s)
    out.text(f"{s.snapshots} snapshot{'' if s.snapshots == 1 else 's'}; data in use and not:")
    out.text(_row("used:", None, s.blobs_used, s.bytes_used))
    out.text(_row("unused:", None, s.blobs_unused, s.bytes_unused))
    if s.blobs_duplicate:
        out.text(f"{s.blobs_duplicate} used blob(s) are stored more than once")
    nothing = not (s.packs_removed or s.packs_repacked or s.packs_unreferenced
                   or s.packs_missing or s.index_files_written)
    if nothing and not s.dry_run:
        out.text("nothing to prune: every pack is kept")
        return
    verb = "to " if s.dry_run else ""
    out.text("")
    out.text(_row(f"{verb}keep:", s.packs_kept, s.blobs_kept, s.bytes_kept))
    out.text(_row(f"{verb}repack:", s.packs_repacked, s.blobs_repacked, s.bytes_repacked))
    out.text(_row(f"{verb}remove:", s.packs_removed, s.blobs_removed, s.bytes_removed))
    if s.packs_unreferenced:
        out.text(_row("unreferenced:", s.packs_unreferenced, None, s.bytes_unreferenced)
                 + "  (in no index, left by an interrupted backup)")
    if s.packs_missing:
        out.text(f"{s.packs_missing} indexed pack(s) are missing from storage and are dropped "
                 "from the index; run `medark check`")
    remaining = s.bytes_kept + s.bytes_written
    share = 100.0 * s.bytes_unused_after / remaining if remaining else 0.0
    out.text(f"unused after prune: {format_bytes(s.bytes_unused_after)} "
             f"({share:.2f}% of what remains)")
    out.text("")
    if s.dry_run:
        out.text(f"dry run, nothing changed: prune would delete {s.packs_deleted} pack file(s) "
                 f"and free about {format_bytes(s.bytes_freed)}")
    else:
        out.text(f"deleted {s.packs_deleted} pack file(s) and {s.index_files_removed} index "
                 f"file(s); wrote {s.packs_written} pack(s) and {s.index_files_written} "
                 "index file(s)")
        out.text(f"freed {format_bytes(s.bytes_freed)}")

COMMAND = Command("prune", "remove data that no snapshot uses", add_arguments, run)
