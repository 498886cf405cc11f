"""What a `backup` covers and what it is compared with: the given paths made absolute
and nested (a directory backed up whole swallows the paths under it), and the parent
snapshot whose unchanged files are not read again."""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

from medark.errors import SourceError
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots, filter_snapshots
from medark.sources.files.excludes import Excluder
from medark.util.progress import Progress


def find_parent(
    repo: Repository, host: str, paths: list[str], explicit: str | None,
    snapshots: list[Snapshot] | None = None,
) -> Snapshot | None:
    """restic's choice: the newest snapshot of the same host with the same paths.
    `snapshots`: every snapshot, oldest first, when the caller has them already."""
    snaps = all_snapshots(repo) if snapshots is None else snapshots
    if explicit:
        from_store = [s for s in snaps if s.id.startswith(explicit)]
        return from_store[-1] if from_store else None
    same = same_source(snaps, host, paths)
    return same[-1] if same else None


def same_source(snaps: list[Snapshot], host: str, paths: list[str]) -> list[Snapshot]:
    """The snapshots of one host and path set (the history a backup is judged against)."""
    return [s for s in filter_snapshots(snaps, hosts=[host])
            if sorted(s.paths) == sorted(paths)]


def normalize_paths(paths: list[str]) -> list[str]:
    out = []
    for path in paths:
        absolute = os.path.abspath(path)
        if not os.path.lexists(absolute):
            raise SourceError(f"{path} does not exist")
        out.append(absolute)
    return sorted(set(out))


def build_path_tree(paths: list[str]) -> dict[str, Any]:
    """Nested dict of path components; None marks a path that is backed up whole."""
    root: dict[str, Any] = {}
    for path in paths:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise SourceError("backing up / itself is not supported; list its directories")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is None:
                break  # a parent directory is already backed up whole
            node = child
        else:
            node[parts[-1]] = None
    return root



def estimate_totals(paths: list[str], excluder: Excluder, progress: Progress,
                    done: threading.Event) -> None:
    """Count files and bytes ahead of the backup so the progress bar has an ETA (in a
    thread of its own; stops when the backup is `done` first)."""
    files = nbytes = 0
    stack = list(paths)
    while stack and not done.is_set():
        path = stack.pop()
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                with os.scandir(path) as entries:
                    stack.extend(e.path for e in entries if not excluder.excluded(e.path))
            elif stat.S_ISREG(st.st_mode):
                files += 1
                nbytes += st.st_size
        except OSError:
            continue
    if not done.is_set():
        progress.set_total(files, nbytes)
