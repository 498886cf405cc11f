"""An institution's snapshots for the API: list a system's, browse one directory of one,
find files in one. Patient data: the routes ask server/grants.py first.

A system's snapshots are those tagged `system=NAME` (what the daemon's backups carry) in
the repositories of the plans that protect it (a plan's repository and its copy targets),
each opened from the institution's current configuration the way the daemon's services
open one (service/session.py open_configured, the cache under $MEDARK_CACHE_DIR) — but
only with a password_file in the server's own directory (check_password_sources), with
a shared lock as `medark ls` takes. The listing is the engine's own (engine/listing.py
resolve and load_nodes, engine/find.py Finder).

File names and paths never go to the server's log: only the client that asked and the
audit trail see them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medark.config.plans import MedarkConfig
from medark.engine.find import Finder
from medark.engine.listing import load_nodes, normalize_dir, resolve
from medark.errors import CatalogError, MedarkError, ObjectNotFound, UsageError
from medark.repo.repository import Repository
from medark.server.totpkey import key_file
from medark.service.session import locked, open_configured
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import all_snapshots, find_snapshot
from medark.util import clock

log = logging.getLogger("medark.server")
MAX_FIND = 10_000
PASSWORDS_ENV = "MEDARK_SERVER_REPOSITORY_PASSWORDS"


class RepositoryUnavailable(CatalogError):
    """A repository of the institution's configuration cannot be opened or read (its
    password source, its storage): the server's side, not the request's (503)."""

    code = "repository_unavailable"


@dataclass(frozen=True)
class Found:
    """A snapshot of the system and the repository it is in."""

    snapshot: Snapshot
    repository: str


def system_repositories(config: MedarkConfig, system: str) -> list[str]:
    """The repositories of the plans that protect `system`, with their copy targets;
    ObjectNotFound when the configuration has no such system."""
    if system not in config.systems:
        raise ObjectNotFound(f"no system {system!r} in the institution's configuration")
    names: list[str] = []
    for plan in config.plans.values():
        if plan.system == system:
            for name in (plan.repository, *(copy.to for copy in plan.copies)):
                if name not in names:
                    names.append(name)
    return names


def password_directory(catalog_url: str) -> Path:
    """Where the server reads institutions' repository password files: the
    $MEDARK_SERVER_REPOSITORY_PASSWORDS directory, else `repository-passwords` beside the
    server key (/var/lib/medark/repository-passwords in a package install)."""
    named = os.environ.get(PASSWORDS_ENV)
    return Path(named) if named else key_file(catalog_url).parent / "repository-passwords"


def check_password_sources(config: MedarkConfig, system: str, directory: Path) -> None:
    """Refuse what a configuration could make the server do with a password source: a
    hospital's system administrator writes that configuration, so a password_command
    would be a command of theirs run on the regional center's server, and a password
    file anywhere would let them probe the server's files. Only a password_file inside
    `directory`, which the server's operator fills, is read."""
    root = directory.resolve()
    for name in system_repositories(config, system):
        conf = config.repositories.get(name)
        if conf is None:
            continue  # open_configured names it
        if conf.password_command:
            raise RepositoryUnavailable(
                f"repository {name}: the management server never runs a configuration's "
                f"password_command; put its password in a file in {directory} and name "
                "that file as password_file")
        if not conf.password_file or not Path(conf.password_file).resolve().is_relative_to(
                root):
            raise RepositoryUnavailable(
                f"repository {name}: the management server reads repository passwords "
                f"only from files in {directory} (${PASSWORDS_ENV}); its password_file is "
                "elsewhere")


def _warn(message: str) -> None:
    log.warning("%s", message.splitlines()[0] if message else "lock warning")


@contextmanager
def _opened(config: MedarkConfig, name: str) -> Iterator[Repository]:
    """The repository, open and shared-locked; a failure to open or read it is
    RepositoryUnavailable (what a request names, missing or wrong, passes through)."""
    try:
        repo = open_configured(config, name)
    except MedarkError as exc:
        raise RepositoryUnavailable(f"repository {name}: {_first(exc)}") from None
    try:
        with locked(repo, False, "server", _warn):
            yield repo
    except (ObjectNotFound, UsageError):
        raise
    except MedarkError as exc:
        raise RepositoryUnavailable(f"repository {name}: {_first(exc)}") from None
    finally:
        repo.close()


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _of_system(snap: Snapshot, system: str) -> bool:
    return f"system={system}" in snap.tags


def list_snapshots(config: MedarkConfig, system: str) -> list[Found]:
    """The system's snapshots in every repository of its plans, oldest first."""
    found: list[Found] = []
    for name in system_repositories(config, system):
        with _opened(config, name) as repo:
            found.extend(Found(s, name) for s in all_snapshots(repo) if _of_system(s, system))
    return sorted(found, key=lambda f: (f.snapshot.time, f.snapshot.id))


@contextmanager
def opened_snapshot(config: MedarkConfig, system: str, ref: str
                    ) -> Iterator[tuple[Repository, Found]]:
    """The system's snapshot with id (prefix) `ref`, in the first repository of the
    system that holds it, the repository open."""
    for name in system_repositories(config, system):
        with _opened(config, name) as repo:
            try:
                snap = find_snapshot(repo, ref)
            except ObjectNotFound:
                continue
            if _of_system(snap, system):
                yield repo, Found(snap, name)
                return
    raise ObjectNotFound(f"no snapshot {ref} of system {system}")


def _mtime(node: Node) -> str:
    return clock.format_time(datetime.fromtimestamp(node.mtime_ns // 1_000_000_000, tz=UTC))


def _size(node: Node) -> int | None:
    return node.size if node.type == "file" else None


def browse(config: MedarkConfig, system: str, ref: str, path: str
           ) -> tuple[Found, str, list[dict[str, Any]]]:
    """One directory level of a snapshot: (snapshot, the normalised path, entries)."""
    directory = normalize_dir(path)
    with opened_snapshot(config, system, ref) as (repo, found):
        snap = found.snapshot
        node = resolve(repo, snap.tree, directory, snap.id)
        if node is not None and (node.type != "dir" or node.subtree is None):
            raise UsageError(f"{directory} is not a directory in snapshot {snap.short_id}")
        tree = snap.tree if node is None else node.subtree
        assert tree is not None
        entries = [{"name": n.name, "type": n.type, "size": _size(n), "mtime": _mtime(n)}
                   for n in load_nodes(repo, tree)]
    return found, directory, entries


def find(config: MedarkConfig, system: str, ref: str, pattern: str, limit: int
         ) -> tuple[Found, list[dict[str, Any]], bool]:
    """Files of a snapshot matching a glob (as `medark find`): (snapshot, the first
    `limit` matches, whether there were more)."""
    with opened_snapshot(config, system, ref) as (repo, found):
        matches = Finder(repo, [pattern]).find(found.snapshot.tree)
    shown = [{"path": p, "type": n.type, "size": _size(n), "mtime": _mtime(n)}
             for p, n in matches[:limit]]
    return found, shown, len(matches) > limit


def snapshot_view(found: Found) -> dict[str, Any]:
    snap = found.snapshot
    size = snap.summary.get("total_bytes_processed")
    return {"id": snap.id, "short_id": snap.short_id, "time": clock.format_time(snap.time),
            "host": snap.hostname, "tags": list(snap.tags), "paths": list(snap.paths),
            "size": size if isinstance(size, int) else None,
            "repository": found.repository, "dicom_instances": dicom_instances(snap)}


def dicom_instances(snap: Snapshot) -> int | None:
    """Instances its DICOM catalog holds (a count, not patient data); None without one
    (the console offers its study search only with some)."""
    count = snap.dicom_catalog.get("instances") if snap.dicom_catalog else None
    return count if isinstance(count, int) else None
