"""Which stored objects a snapshot needs, for immutable retention and legal holds.

A snapshot needs: its own file, the config, the key files, every pack holding one of
its tree or data blobs, and the index files naming those packs. `protect_snapshot` runs
just before a snapshot file is written (snapshot/store.py), so a snapshot never exists
whose objects are locked for less than the lock period: it extends what needs it
(repo/retention.py) and then remembers, per tree, until when everything below it is
known to be locked, so the next backup walks only the trees that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from medark.repo.config import CONFIG_NAME
from medark.repo.keys import KEYS_PREFIX
from medark.repo.pack import PackedBlob, pack_name
from medark.repo.retention import RetentionKeeper
from medark.snapshot.model import Snapshot, decode_tree
from medark.util import clock

SNAPSHOTS_PREFIX = "snapshots/"


@runtime_checkable
class NeedsRepo(Protocol):
    """What finding a snapshot's objects needs from the repository
    (docs/architecture.md, convention 4)."""

    retention: RetentionKeeper | None

    def load_blob(self, blob_id: bytes) -> bytes: ...

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]: ...

    def index_file_of(self, pack_id: bytes) -> str | None: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...


def needed_objects(
    repo: NeedsRepo, snapshot: Snapshot, horizon: datetime | None = None
) -> tuple[set[str], list[bytes]]:
    """(storage names, trees walked). With a horizon, trees whose whole content the
    retention sidecar knows to be locked until then are not walked again."""
    keeper = repo.retention
    names = {CONFIG_NAME, *repo.list_names(KEYS_PREFIX)}
    if snapshot.id:
        names.add(SNAPSHOTS_PREFIX + snapshot.id)
    packs: set[bytes] = set()
    seen_blobs: set[bytes] = set()
    walked: list[bytes] = []
    stack = snapshot.roots()
    seen_trees: set[bytes] = set()
    while stack:
        tree_id = stack.pop()
        if tree_id in seen_trees:
            continue
        seen_trees.add(tree_id)
        if horizon is not None and keeper is not None and keeper.tree_covered(tree_id, horizon):
            continue
        walked.append(tree_id)
        packs.add(repo.locate(tree_id)[0])
        for node in decode_tree(repo.load_blob(tree_id)):
            for blob_id in node.content:
                if blob_id not in seen_blobs:
                    seen_blobs.add(blob_id)
                    packs.add(repo.locate(blob_id)[0])
            if node.subtree is not None:
                stack.append(node.subtree)
    for pack_id in packs:
        names.add(pack_name(pack_id.hex()))
        index_name = repo.index_file_of(pack_id)
        if index_name is not None:
            names.add(index_name)
    return names, walked


def protect_snapshot(repo: NeedsRepo, snapshot: Snapshot) -> int:
    """Before `snapshot` is written: lock everything it needs for the lock period.
    Returns how many existing objects had their retention extended (0 without a policy)."""
    keeper = repo.retention
    if keeper is None:
        return 0
    keeper.require()
    horizon = keeper.horizon(max(snapshot.time, clock.now()))
    names, walked = needed_objects(repo, snapshot, horizon)
    extended = keeper.ensure(names, horizon)
    lowest = keeper.known_minimum(names)
    if lowest is not None and walked:
        keeper.record_trees(walked, datetime.fromtimestamp(lowest, UTC))
    return extended
