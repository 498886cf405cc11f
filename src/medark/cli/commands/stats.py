"""`medark stats [SNAPSHOT...]`: sizes of snapshots (restore-size or raw-data mode, restic's
names in --json) and always the whole repository: raw, deduplicated and stored size and
the ratios between them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, select
from medark.cli.context import Context
from medark.engine.choices import STATS_MODES
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.engine.stats import StatsReport


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT",
                   help="snapshot ids or 'latest' (default: all snapshots)")
    p.add_argument("--mode", choices=STATS_MODES, default="restore-size",
                   help="restore-size: what a restore writes; raw-data: distinct blobs "
                        "referenced, deduplicated and stored (default restore-size)")
    add_filters(p)


def run(ctx: Context) -> int:
    from medark.engine.stats import compute_stats
    from medark.snapshot.store import all_snapshots

    with ctx.repository(lock="shared", command="stats") as repo:
        every = all_snapshots(repo)
        selected = select(repo, ctx.args.snapshots, ctx.args)
        progress = ctx.progress("stats")
        try:
            report = compute_stats(repo, selected, every, ctx.args.mode, progress)
        finally:
            progress.close()
    if ctx.out.as_json:
        ctx.out.json(report.as_json())
    else:
        for line in text(report):
            ctx.out.text(line)
    return 0


def _row(label: str, value: object) -> str:
    return f"{label:>24}:  {value}"


def text(report: StatsReport) -> list[str]:
    lines = [f"Stats in {report.mode} mode:", _row("Snapshots processed", report.snapshots_count)]
    if report.blobs is None:
        lines.append(_row("Total File Count", report.file_count))
        lines.append(_row("Total Size", format_bytes(report.total_size)))
    else:
        b = report.blobs
        lines += [
            _row("Total Blob Count", b.count),
            _row("Total Uncompressed Size", format_bytes(b.plain)),
            _row("Total Size", format_bytes(b.sealed)),
            _row("Compression Progress", f"{b.compression_progress:.2f}%"),
            _row("Compression Ratio", f"{b.compression_ratio:.2f}x"),
            _row("Compression Space Saving", f"{b.compression_space_saving:.2f}%"),
            _row("Restore Size", format_bytes(report.restore_size)),
            _row("Deduplication Ratio", f"{report.as_json()['dedup_ratio']:.2f}x"),
        ]
    repo = report.repository
    lines += [
        "",
        "Repository:",
        _row("Snapshots", repo.snapshots_count),
        _row("Raw Size", format_bytes(repo.raw_size)),
        _row("Deduplicated Size", format_bytes(repo.blobs.plain)),
        _row("Stored Size", f"{format_bytes(repo.stored_size)} in {repo.pack_count} packs"),
        _row("Deduplication Ratio", f"{repo.dedup_ratio:.2f}x"),
        _row("Compression Ratio", f"{repo.blobs.compression_ratio:.2f}x"),
        _row("Compression Space Saving", f"{repo.blobs.compression_space_saving:.2f}%"),
    ]
    return lines


COMMAND = Command("stats", "show sizes, deduplication and compression", add_arguments, run)
