"""Network-device configuration versions that no `forget` can remove (docs/netconfig.md).

Sichuan 1.4.1 asks for at least the last 3 changes of every device's configuration. A
version is a snapshot tagged `netconfig` (host = the device), and carries its device's
keep count as `netconfig-keep=N`; whatever policy `forget` applies, and even when a
version is named by id, the newest max(3, N) versions of each device stay. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from medark.snapshot.model import Snapshot

TAG = "netconfig"
KEEP_TAG = "netconfig-keep="
MIN_KEEP = 3
DEFAULT_KEEP = 10


def keep_count(snapshot: Snapshot) -> int:
    """The device's keep count the version carries (10 when it carries none), ≥ 3."""
    value = next((t[len(KEEP_TAG):] for t in snapshot.tags if t.startswith(KEEP_TAG)), "")
    return max(MIN_KEEP, int(value)) if value.isdigit() else DEFAULT_KEEP


def netconfig_holds(snapshots: Iterable[Snapshot]) -> dict[str, str]:
    """Snapshot id -> why it must be kept: each device's newest max(3, keep) versions
    (the keep count of its newest version decides)."""
    devices: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for snap in snapshots:
        if TAG in snap.tags:
            devices.setdefault((snap.hostname, tuple(sorted(snap.paths))), []).append(snap)
    held: dict[str, str] = {}
    for (device, _paths), found in devices.items():
        found.sort(key=lambda s: (s.time, s.id), reverse=True)
        keep = keep_count(found[0])
        for snap in found[:keep]:
            held[snap.id] = (f"network-device configuration: one of {device}'s newest "
                             f"{keep} versions")
    return held
