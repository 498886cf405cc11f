"""Network-device configurations in a repository (docs/netconfig.md).

Phases of `fetch`: (1) fetch every device's configuration, a bounded number at once (the
network is the slow part); (2) for each, compare the SHA-256 of its normalised text with
the tag of its newest stored version, and store a new version (a stdin-backup snapshot:
host = device, path /netconfig/DEVICE.cfg, tags netconfig, netconfig-sha256=…,
netconfig-keep=N) only when they differ; (3) remove the versions beyond the device's
`keep` (never below 3; the data goes at the next prune). A crash between phases leaves
at worst an extra version, removed by the next fetch.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medark.config.netconfig import NetconfigConf, in_window
from medark.config.plans import MedarkConfig
from medark.engine.backup_stdin import backup_stream, write_stream_snapshot
from medark.errors import MedarkError, UsageError
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots, load_tree
from medark.sources.netconfig.profiles import clean, fingerprint, profile
from medark.sources.netconfig.ssh import Target, fetch
from medark.util import clock
from medark.util.progress import NullProgress

TAG = "netconfig"
SHA_TAG = "netconfig-sha256="
KEEP_TAG = "netconfig-keep="
PREFIX = "/netconfig/"
PARALLEL = 16
"""Devices fetched at once: a core switch answers in about a second, so 200 devices
take well under a minute, and a hospital's management network is not flooded."""


@dataclass
class Outcome:
    """One device's fetch: stored a new version, unchanged, or failed (with the error)."""

    device: str
    status: str  # "stored", "unchanged", "failed"
    snapshot_id: str | None = None
    sha256: str | None = None
    error: MedarkError | None = None
    outside_window: bool = False
    removed: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"device": self.device, "status": self.status,
                               "snapshot_id": self.snapshot_id, "sha256": self.sha256,
                               "outside_change_window": self.outside_window,
                               "removed": self.removed}
        if self.error is not None:
            doc["error"] = str(self.error)
            doc["exit_code"] = self.error.exit_code
        return doc


def netconfig_of(config: MedarkConfig) -> NetconfigConf:
    if config.netconfig is None:
        raise UsageError("the configuration has no [netconfig] section naming devices "
                         "(docs/netconfig.md)")
    return config.netconfig


def target(conf: NetconfigConf, name: str) -> Target:
    device = conf.devices[name]
    return Target(name, device.address, device.port, device.username, device.password_file,
                  device.key_file, device.known_hosts or conf.known_hosts,
                  device.host_key_checking,
                  conf.timeout.total_seconds(), device.command)


def chosen(conf: NetconfigConf, names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in conf.devices]
    if unknown:
        raise UsageError(f"unknown device {unknown[0]!r} (defined: "
                         f"{', '.join(sorted(conf.devices))})")
    return names or sorted(conf.devices)


def fetch_all(conf: NetconfigConf, names: list[str]) -> dict[str, str | MedarkError]:
    """Phase 1: each device's raw configuration, or the error that stopped it."""
    def one(name: str) -> str | MedarkError:
        try:
            return fetch(target(conf, name), profile(conf.devices[name].profile))
        except MedarkError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(PARALLEL, max(1, len(names)))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def versions(snapshots: list[Snapshot], device: str) -> list[Snapshot]:
    """The device's stored versions, newest first."""
    found = [s for s in snapshots if TAG in s.tags and s.hostname == device
             and s.paths == [path_of(device)]]
    return sorted(found, key=lambda s: (s.time, s.id), reverse=True)


def path_of(device: str) -> str:
    return f"{PREFIX}{device}.cfg"


def tag_value(snap: Snapshot, prefix: str) -> str | None:
    return next((t[len(prefix):] for t in snap.tags if t.startswith(prefix)), None)


def store(repo: Repository, conf: NetconfigConf, name: str, raw: str,
          existing: list[Snapshot], now: datetime, zone: Any) -> Outcome:
    """Phase 2 for one device: a new version only when the normalised text changed."""
    device = conf.devices[name]
    prof = profile(device.profile)
    sha = fingerprint(raw, prof)
    newest = existing[0] if existing else None
    if newest is not None and tag_value(newest, SHA_TAG) == sha:
        return Outcome(name, "unchanged", newest.id, sha)
    text = clean(raw, prof).encode("utf-8")
    started, t0 = clock.now(), clock.monotonic()
    node, counts = backup_stream(repo, io.BytesIO(text), f"{name}.cfg", progress=NullProgress())
    repo.flush()
    tags = [TAG, f"{SHA_TAG}{sha}", f"{KEEP_TAG}{conf.keep_of(name)}"]
    meta: dict[str, object] = {"type": "netconfig", "profile": device.profile,
                               "address": device.address, "port": device.port}
    snap, _summary = write_stream_snapshot(repo, node, counts, started, t0, tags, name,
                                           "netconfig", paths=[path_of(name)], meta=meta)
    window = conf.window_of(name)
    outside = (newest is not None and window is not None
               and not in_window(window, now.astimezone(zone)))
    return Outcome(name, "stored", snap.id, sha, outside_window=outside)


def beyond_keep(conf: NetconfigConf, snapshots: list[Snapshot],
                names: list[str]) -> dict[str, list[Snapshot]]:
    """Phase 3's choice: per device, the versions older than its newest `keep`."""
    return {name: versions(snapshots, name)[conf.keep_of(name):] for name in names}


def fetch_and_store(repo: Repository, config: MedarkConfig, names: list[str]
                    ) -> list[Outcome]:
    """Phases 1 and 2 for `names` (all devices when empty), under a shared lock as a
    backup: new versions only add."""
    conf = netconfig_of(config)
    names = chosen(conf, names)
    fetched = fetch_all(conf, names)
    snapshots = all_snapshots(repo)
    now = clock.now()
    outcomes: list[Outcome] = []
    for name in names:
        raw = fetched[name]
        if isinstance(raw, MedarkError):
            outcomes.append(Outcome(name, "failed", error=raw))
            continue
        outcomes.append(store(repo, conf, name, raw, versions(snapshots, name), now,
                              config.zone))
    return outcomes


def trim(repo: Repository, config: MedarkConfig, outcomes: list[Outcome],
         remove: Callable[[list[Snapshot]], list[Snapshot]]) -> None:
    """Phase 3, under an exclusive lock as forget: `remove` deletes snapshot files
    (engine/worm.remove_snapshots: legal holds and WORM locks respected) and returns
    those it removed, noted in each device's outcome."""
    conf = netconfig_of(config)
    extra = beyond_keep(conf, all_snapshots(repo), [o.device for o in outcomes])
    for outcome in outcomes:
        if extra[outcome.device]:
            outcome.removed = [s.id for s in remove(extra[outcome.device])]


def needs_trim(repo: Repository, config: MedarkConfig, outcomes: list[Outcome]) -> bool:
    conf = netconfig_of(config)
    extra = beyond_keep(conf, all_snapshots(repo), [o.device for o in outcomes])
    return any(extra.values())


def find_version(repo: Repository, device: str, ref: str | None,
                 snapshots: list[Snapshot] | None = None) -> Snapshot:
    """Version `ref` of a device: 1 (the newest), 2, … as `versions` numbers them, or a
    snapshot id (prefix); None: the newest."""
    found = versions(snapshots if snapshots is not None else all_snapshots(repo), device)
    if not found:
        raise UsageError(f"no stored configuration of device {device!r}")
    if ref is None:
        return found[0]
    if ref.isdigit() and len(ref) < 6:
        number = int(ref)
        if not 1 <= number <= len(found):
            raise UsageError(f"device {device} has versions 1 to {len(found)}, not {ref}")
        return found[number - 1]
    matches = [s for s in found if s.id.startswith(ref)]
    if len(matches) != 1:
        raise UsageError(f"{ref!r} names {'no' if not matches else 'more than one'} "
                         f"version of device {device}")
    return matches[0]


def read_version(repo: Repository, snap: Snapshot) -> bytes:
    nodes = load_tree(repo, snap.tree)
    node = next((n for n in nodes if n.type == "file"), None)
    if node is None:
        raise UsageError(f"snapshot {snap.short_id} holds no configuration file")
    return b"".join(repo.load_blob(blob) for blob in node.content)
