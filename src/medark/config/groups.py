"""Consistency groups in the configuration: which sources of a system form one restorable
point, and the mistakes that would make a group's point meaningless (docs/pacs.md)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

GROUP_DATABASES = ("postgres", "sqlite", "mariadb")
"""Database kinds a group can hold: postgres (a WAL position), sqlite, Orthanc's SQLite
index copied while Orthanc is stopped (sources/pacs/sqlite_point.py), and mariadb (a
binlog position, sources/pacs/mariadb_point.py)."""


class GroupedSource(Protocol):
    """What a group needs of a source (config/plans.py's Source)."""

    @property
    def type(self) -> str: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def dsn(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...
    @property
    def pacs(self) -> str | None: ...
    @property
    def index_query(self) -> str | None: ...
    @property
    def storages(self) -> dict[str, str] | None: ...
    @property
    def stop_command(self) -> str | None: ...
    @property
    def start_command(self) -> str | None: ...


@dataclass(frozen=True)
class Group:
    """One group of a system: its database and its files source, by index in `sources`."""

    name: str
    database: int
    files: int


def group_problems(sources: Sequence[GroupedSource]
                   ) -> list[tuple[tuple[str | int, ...], str]]:
    """((source index, key), message) for each mistake in the system's groups."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, source in enumerate(sources):
        if source.pacs is not None and (source.type != "files" or source.group is None):
            found.append(((i, "pacs"), "pacs belongs to the files source of a group "
                          "(set group = \"NAME\" on it and on its database source)"))
        if source.index_query is not None and source.pacs != "sql":
            found.append(((i, "index_query"), "index_query needs pacs = \"sql\""))
        if source.storages is not None and source.pacs != "dcm4chee":
            found.append(((i, "storages"), "storages goes with pacs = \"dcm4chee\" on a "
                          "group's files source (dcm4chee-arc's storage IDs, each mapped to "
                          "its directory)"))
        if source.pacs == "sql" and not source.index_query:
            found.append(((i, "pacs"), "pacs = \"sql\" needs index_query = \"SELECT path "
                          "FROM ...\" (the index's file paths)"))
        if source.group is not None and source.type not in ("files", *GROUP_DATABASES):
            found.append(((i, "group"), f"a {source.type} source cannot be in a group: a "
                          "group holds one database (postgres, sqlite or mariadb) and one files "
                          "source"))
        found += _sqlite_problems(i, source)
    for name in sorted({s.group for s in sources if s.group is not None}):
        members = [(i, s) for i, s in enumerate(sources) if s.group == name]
        first = members[0][0]
        databases = [i for i, s in members if s.type in GROUP_DATABASES]
        files = [i for i, s in members if s.type == "files"]
        if len(databases) != 1:
            kinds = {kind: sum(1 for i in databases if sources[i].type == kind)
                     for kind in GROUP_DATABASES}
            found.append(((first, "group"), f"group {name!r} needs one database: exactly "
                          f"one postgres source (has {kinds['postgres']}) or one sqlite "
                          f"source (has {kinds['sqlite']}) or one mariadb source (has "
                          f"{kinds['mariadb']})"))
        if len(files) != 1:
            found.append(((first, "group"), f"group {name!r} needs exactly one files source "
                          f"(has {len(files)})"))
        for i in files:
            if len(sources[i].paths) != 1:
                found.append(((i, "paths"), f"the files source of group {name!r} has one "
                              "path: the PACS's storage root"))
            if sources[i].pacs is None:
                found.append(((i, "pacs"), f"the files source of group {name!r} needs pacs "
                              "= \"orthanc\", \"dcm4chee\" or \"sql\" (how the index names "
                              "its files)"))
            found += _storages_problems(i, sources[i], name)
            if sources[i].pacs == "dcm4chee" and any(sources[d].type == "sqlite"
                                                     for d in databases):
                found.append(((i, "pacs"), f"group {name!r}: dcm4chee's index is not "
                              "SQLite (a sqlite database goes with pacs = \"orthanc\" or "
                              "\"sql\")"))
    return found


def storage_dirs(storages: Mapping[str, str], root: str) -> dict[str, str]:
    """dcm4chee's storage IDs to their directories relative to `root` (the group's files
    path): each given absolute inside it or relative to it. ValueError names the first
    one that is empty or outside (a storage outside the root is not in its scan)."""
    root = posixpath.normpath(root)
    found = {}
    for storage, directory in storages.items():
        if not storage.strip() or not directory.strip():
            raise ValueError(f"storage {storage!r}: give an ID and its directory")
        full = posixpath.normpath(posixpath.join(root, directory))
        if full != root and not full.startswith(root.rstrip("/") + "/"):
            raise ValueError(f"storage {storage!r}: {directory} is not inside {root}, the "
                             "storage root Medark scans (set the files source's path to a "
                             "common parent of the storages)")
        found[storage] = posixpath.relpath(full, root)
    return found


def _storages_problems(i: int, source: GroupedSource, name: str
                       ) -> list[tuple[tuple[str | int, ...], str]]:
    """storages belongs to a dcm4chee files source, each directory inside its path."""
    if source.storages is None or source.pacs != "dcm4chee":
        return []  # storages without dcm4chee is named with the source
    if not source.storages:
        return [((i, "storages"), "storages is empty: map each storage ID to its directory "
                 "({ fs1 = \"/storage/fs1\" }) or leave it out")]
    if len(source.paths) != 1:
        return []  # the one-path problem is named already
    found: list[tuple[tuple[str | int, ...], str]] = []
    for storage, directory in source.storages.items():
        if not posixpath.isabs(directory):
            found.append(((i, "storages", storage), f"group {name!r}: storage {storage!r} "
                          f"needs an absolute directory (inside {source.paths[0]})"))
            continue
        try:
            storage_dirs({storage: directory}, source.paths[0])
        except ValueError as exc:
            found.append(((i, "storages", storage), f"group {name!r}: {exc}"))
    return found


def _sqlite_problems(i: int, source: GroupedSource) -> list[tuple[tuple[str | int, ...], str]]:
    """A sqlite source is a group's database, one index file, stopped and started by
    both commands or neither; the commands belong to it alone."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    commands = [(key, value) for key, value in (("stop_command", source.stop_command),
                                                 ("start_command", source.start_command))
                if value is not None]
    if source.type != "sqlite":
        found += [((i, key), f"{key} belongs to a sqlite source (the PACS stopped while "
                   "its SQLite index is copied)") for key, _value in commands]
        return found
    if source.group is None:
        found.append(((i, "type"), "a sqlite source (Orthanc's SQLite index) is only a "
                      "consistency group's database: set group = \"NAME\" on it and on "
                      "the PACS's files source"))
    if len(source.paths) > 1:
        found.append(((i, "paths"), "a sqlite source has one path: the index file (e.g. "
                      "/var/lib/orthanc/db/index)"))
    if len(commands) == 1:
        key = commands[0][0]
        other = "start_command" if key == "stop_command" else "stop_command"
        found.append(((i, key), f"{key} needs {other} too (the PACS stopped for the copy "
                      "is started again after it)"))
    found += [((i, key), f"{key} is empty") for key, value in commands if not value.strip()]
    return found


def groups_of(sources: Sequence[GroupedSource]) -> list[Group]:
    """The system's (valid) groups, in name order."""
    found = []
    for name in sorted({s.group for s in sources if s.group is not None}):
        members = [(i, s) for i, s in enumerate(sources) if s.group == name]
        databases = [i for i, s in members if s.type in GROUP_DATABASES]
        files = [i for i, s in members if s.type == "files"]
        if len(databases) == 1 and len(files) == 1:
            found.append(Group(name, databases[0], files[0]))
    return found
