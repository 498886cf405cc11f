"""`medark netconfig fetch|versions|show|diff`: network-device configurations kept as
versions in a repository (docs/netconfig.md, service/netconfig.py).

The devices and the repository come from the plan file's `[netconfig]` section
(--config); `-r/--repo` reads versions from another repository (a copy) instead. `fetch`
records each failure and each change outside a change window as an alert in the
catalog, delivered through the configured channels.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.parser import add_actions
from medark.cli.plan_options import add_catalog_option, add_config_option

if TYPE_CHECKING:
    from medark.cli.context import Context
    from medark.config.plans import MedarkConfig
    from medark.repo.repository import Repository
    from medark.service.netconfig import Outcome
    from medark.snapshot.model import Snapshot

ACTIONS = {
    "fetch": "fetch the devices' configurations; store a version when one changed",
    "versions": "list a device's stored configuration versions, newest first",
    "show": "print a stored configuration version (default: the newest)",
    "diff": "unified diff of two versions (default: the newest two)",
}
ALERT_DELIVERY = 30.0
"""Seconds `fetch` waits at exit for its alert notices to be delivered."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    parsers = add_actions(p, ACTIONS)
    for name, sub in parsers.items():
        add_config_option(sub)
        if name == "fetch":
            sub.add_argument("devices", nargs="*", metavar="DEVICE",
                             help="devices to fetch (default: every configured device)")
            add_catalog_option(sub)
            continue
        sub.add_argument("device", metavar="DEVICE")
    parsers["show"].add_argument("version", nargs="?", metavar="VERSION",
                                 help="a number from `versions` (1 = newest) or a "
                                 "snapshot id")
    parsers["diff"].add_argument("old", nargs="?", metavar="V1",
                                 help="the older version (default: the second newest)")
    parsers["diff"].add_argument("new", nargs="?", metavar="V2",
                                 help="the newer version (default: the newest)")


def run(ctx: Context) -> int:
    from medark.service.plans import config_path, load_plans

    action = ctx.args.action
    if action == "fetch":
        return _fetch(ctx, load_plans(config_path(ctx.args.config)))
    reading_elsewhere = getattr(ctx.args, "repo", None) and not ctx.args.config
    config = None if reading_elsewhere else load_plans(config_path(ctx.args.config))
    with _repository(ctx, config, exclusive=False) as repo:
        if action == "versions":
            return _versions(ctx, repo)
        if action == "show":
            return _show(ctx, repo)
        return _diff(ctx, repo)


@contextmanager
def _repository(ctx: Context, config: MedarkConfig | None, exclusive: bool
                ) -> Iterator[Repository]:
    """--repo when given, else [netconfig] repository of the plan file, locked."""
    from medark.service.session import locked

    with _opened(ctx, config) as repo, locked(repo, exclusive, "netconfig", ctx.out.warn):
        yield repo


@contextmanager
def _opened(ctx: Context, config: MedarkConfig | None) -> Iterator[Repository]:
    """-r/--repo (a copy, read without the plan file) when given, else the plan file's."""
    if getattr(ctx.args, "repo", None) or config is None:
        repo = ctx.open()
    else:
        from medark.service.netconfig import netconfig_of
        from medark.service.session import open_configured

        repo = open_configured(config, netconfig_of(config).repository, ctx.cache_dir)
    try:
        yield repo
    finally:
        repo.close()


# ---- fetch ---------------------------------------------------------------------------

def _fetch(ctx: Context, config: MedarkConfig) -> int:
    from medark.engine.worm import remove_snapshots
    from medark.service.catalog_access import opened_catalog
    from medark.service.netconfig import fetch_and_store, needs_trim, netconfig_of, trim

    conf = netconfig_of(config)
    for name in ctx.args.devices or sorted(conf.devices):
        device = conf.devices.get(name)
        if device is not None and not device.host_key_checking:
            ctx.out.warn(f"medark: device {name}: host key checking is OFF "
                         "(host_key_checking = false)")

    def remove(snaps: list[Snapshot]) -> list[Snapshot]:
        removed, _kept = remove_snapshots(repo, snaps, False, ctx.out.text)
        return removed

    from medark.service.session import locked

    with _opened(ctx, config) as repo:
        with locked(repo, False, "netconfig fetch", ctx.out.warn):  # adds, as a backup
            outcomes = fetch_and_store(repo, config, list(ctx.args.devices))
            trimming = needs_trim(repo, config, outcomes)
        if trimming:  # removes snapshot files, as forget
            with locked(repo, True, "netconfig fetch", ctx.out.warn):
                trim(repo, config, outcomes, remove)
    for outcome in outcomes:  # what was stored is told first, whatever the catalog does
        _print_outcome(ctx, outcome)
    with opened_catalog(config, ctx.args.catalog) as catalog:
        _alert(config, catalog, outcomes)
    failed = [o.error for o in outcomes if o.error is not None]
    return failed[0].exit_code if failed else 0


def _print_outcome(ctx: Context, outcome: Outcome) -> None:
    if ctx.out.as_json:
        ctx.out.json({"message_type": "netconfig_fetch", **outcome.public()})
    elif outcome.error is not None:
        print(f"medark: {outcome.error}", file=sys.stderr)
    else:
        sid = (outcome.snapshot_id or "")[:8]
        what = (f"new version {sid} stored" if outcome.status == "stored"
                else f"unchanged (newest version {sid})")
        if outcome.outside_window:
            what += ", OUTSIDE its change window"
        ctx.out.text(f"device {outcome.device}: {what}")
    if outcome.removed:
        ctx.out.text(f"device {outcome.device}: removed {len(outcome.removed)} version(s) "
                     "beyond its keep count")


def _alert(config: MedarkConfig, catalog: object, outcomes: list[Outcome]) -> None:
    from medark.catalog.store import Catalog
    from medark.scheduler.alerts import Alerter

    assert isinstance(catalog, Catalog)
    alerter = Alerter(config, catalog, lambda _kind, _doc: None)
    try:
        for outcome in outcomes:
            error = str(outcome.error) if outcome.error is not None else None
            alerter.dr_condition("netconfig_unreachable", outcome.device, error)
            if outcome.error is not None:
                continue
            if outcome.outside_window:
                alerter.dr_condition("netconfig_changed", outcome.device,
                                     "changed outside the change window",
                                     snapshot=(outcome.snapshot_id or "")[:8])
            else:
                alerter.dr_condition("netconfig_changed", outcome.device, None)
    finally:
        alerter.close(ALERT_DELIVERY)


# ---- versions, show, diff -------------------------------------------------------------

def _versions(ctx: Context, repo: Repository) -> int:
    from medark.service.netconfig import SHA_TAG, tag_value, versions
    from medark.snapshot.store import all_snapshots

    found = versions(all_snapshots(repo), ctx.args.device)
    if ctx.out.as_json:
        ctx.out.json([{"version": i, "snapshot_id": s.id, "time": s.time.isoformat(),
                       "sha256": tag_value(s, SHA_TAG), "size": s.summary.get(
                           "total_bytes_processed") if s.summary else None}
                      for i, s in enumerate(found, 1)])
        return 0
    if not found:
        ctx.out.text(f"no stored configuration of device {ctx.args.device}")
        return 0
    ctx.out.text(f"{'version':>7}  {'snapshot':<8}  {'time':<25}  sha256 (normalised)")
    for i, snap in enumerate(found, 1):
        sha = (tag_value(snap, SHA_TAG) or "")[:16]
        ctx.out.text(f"{i:>7}  {snap.short_id:<8}  {snap.time.isoformat(timespec='seconds'):<25}"
                     f"  {sha}")
    return 0


def _show(ctx: Context, repo: Repository) -> int:
    from medark.service.netconfig import find_version, read_version

    snap = find_version(repo, ctx.args.device, ctx.args.version)
    data = read_version(repo, snap)
    if ctx.out.as_json:
        ctx.out.json({"device": ctx.args.device, "snapshot_id": snap.id,
                      "time": snap.time.isoformat(),
                      "configuration": data.decode("utf-8", errors="replace")})
        return 0
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _diff(ctx: Context, repo: Repository) -> int:
    from medark.errors import UsageError
    from medark.service.netconfig import find_version, read_version, versions
    from medark.snapshot.store import all_snapshots

    snaps = all_snapshots(repo)
    device = ctx.args.device
    if ctx.args.old is None:
        found = versions(snaps, device)
        if len(found) < 2:
            raise UsageError(f"device {device} has {len(found)} stored version(s): a diff "
                             "needs two")
        old, new = found[1], found[0]
    else:
        old = find_version(repo, device, ctx.args.old, snaps)
        new = find_version(repo, device, ctx.args.new, snaps)
    before = read_version(repo, old).decode("utf-8", errors="replace").splitlines(True)
    after = read_version(repo, new).decode("utf-8", errors="replace").splitlines(True)
    lines = list(difflib.unified_diff(
        before, after, f"{device}@{old.short_id} ({old.time.isoformat(timespec='seconds')})",
        f"{device}@{new.short_id} ({new.time.isoformat(timespec='seconds')})"))
    if ctx.out.as_json:
        ctx.out.json({"device": device, "old": old.id, "new": new.id,
                      "diff": "".join(lines)})
        return 0
    for line in lines:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()
    return 0


COMMAND = Command("netconfig", "network-device configurations: fetch over SSH, versions, "
                  "show, diff", add_arguments, run)
