"""`medark snapshots`: list snapshots, restic's table and JSON (scripts parse the JSON).

Also home of the --host/--tag/--path snapshot filters that ls, find and stats share.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from medark.cli.command import Command
from medark.cli.context import Context
from medark.engine.listing import local_time
from medark.errors import UsageError
from medark.policy.anomaly import is_flagged, recovery_candidates
from medark.snapshot.model import Snapshot
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.snapshot.store import SnapshotRepo


def add_filters(p: argparse.ArgumentParser, what: str = "snapshots") -> None:
    """restic's snapshot filters: any of the hosts, all of the paths, any tag group."""
    p.add_argument("-H", "--host", action="append", default=[], metavar="HOST",
                   help=f"only {what} from this host (repeatable)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG[,TAG]",
                   help=f"only {what} with these tags (repeatable: any group matches)")
    p.add_argument("--path", action="append", default=[], metavar="PATH",
                   help=f"only {what} that include this path (repeatable: all must match)")


def filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"hosts": args.host or None, "tags": args.tag or None, "paths": args.path or None}


def select(repo: SnapshotRepo, refs: list[str], args: argparse.Namespace) -> list[Snapshot]:
    """The snapshots named by `refs` ('latest', id prefixes), else all that pass the
    filters; oldest first, each once."""
    from medark.snapshot.store import all_snapshots, filter_snapshots, find_snapshot

    if refs:
        found = {s.id: s for s in (find_snapshot(repo, r, **filters(args)) for r in refs)}
        return sorted(found.values(), key=lambda s: (s.time, s.id))
    return filter_snapshots(all_snapshots(repo), **filters(args))


def latest_per_group(snaps: list[Snapshot], n: int) -> list[Snapshot]:
    """restic's --latest N: the newest N of each (host, paths) group."""
    groups: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for snap in snaps:
        groups.setdefault((snap.hostname, tuple(sorted(snap.paths))), []).append(snap)
    kept = [s for group in groups.values() for s in group[-n:]]
    return sorted(kept, key=lambda s: (s.time, s.id))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="SNAPSHOT",
                   help="only these snapshots ('latest' or id prefixes)")
    add_filters(p)
    p.add_argument("--latest", type=int, default=0, metavar="N",
                   help="only the newest N snapshots of each host and path set")
    p.add_argument("--clean", action="store_true",
                   help="only snapshots not flagged as suspicious and older than any "
                        "flagged one: the newest of each host and path set (or --latest N)")


def run(ctx: Context) -> int:
    if ctx.args.latest < 0:
        raise UsageError("--latest must be a positive number")
    with ctx.repository(lock="shared", command="snapshots") as repo:
        snaps = select(repo, ctx.args.ids, ctx.args)
    if ctx.args.clean:
        snaps = latest_per_group(recovery_candidates(snaps), ctx.args.latest or 1)
    elif ctx.args.latest:
        snaps = latest_per_group(snaps, ctx.args.latest)
    if ctx.out.as_json:
        ctx.out.json([dict(s.public(), suspicious=is_flagged(s.summary)) for s in snaps])
    else:
        for line in table(snaps):
            ctx.out.text(line)
    return 0


def table(snaps: list[Snapshot]) -> list[str]:
    """restic's table; a Status column appears when a listed snapshot is flagged."""
    flagged = [is_flagged(s.summary) for s in snaps]
    status = ("Status",) if any(flagged) else ()
    header = ("ID", "Time", "Host", "Tags", "Paths", "Size", *status)
    rows: list[tuple[str, ...]] = []
    for snap, bad in zip(snaps, flagged, strict=True):
        size = snap.summary.get("total_bytes_processed")
        first = (snap.short_id, local_time(snap.time), snap.hostname,
                 snap.tags[0] if snap.tags else "", snap.paths[0] if snap.paths else "",
                 format_bytes(size) if isinstance(size, int) else "",
                 *(("SUSPICIOUS" if bad else "",) if status else ()))
        rows.append(first)
        for i in range(1, max(len(snap.tags), len(snap.paths))):
            rows.append(("", "", "", snap.tags[i] if i < len(snap.tags) else "",
                         snap.paths[i] if i < len(snap.paths) else "", "",
                         *(("",) if status else ())))
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-" * len(line(tuple("x" * w for w in widths)))
    count = f"{len(snaps)} snapshot" + ("" if len(snaps) == 1 else "s")
    if any(flagged):
        count += f", {sum(flagged)} flagged as suspicious (see `medark snapshots --clean`)"
    return [line(header), rule, *(line(r) for r in rows), rule, count]


COMMAND = Command("snapshots", "list snapshots", add_arguments, run)
