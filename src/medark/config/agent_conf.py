"""The `[agent]` table: what a host's `medark agent` lets the management server ask of it
beyond its plans (docs/configuration.md, docs/server.md).

`restore_targets` names the directories a restore the server requests may write into:
the server names a target, never a path, so a compromised or mistaken server cannot make
the agent write anywhere its own configuration does not list. Derives its own `Model`
base (as config/dr.py does): plans.py holds this table in `MedarkConfig`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A restore target's name: what the server sends."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AgentConf(_Model):
    restore_targets: dict[str, str] = {}
    """Name -> absolute directory a server-requested restore may write into."""

    @field_validator("restore_targets")
    @classmethod
    def _targets(cls, value: dict[str, Any]) -> dict[str, str]:
        for name, path in value.items():
            if not TARGET_NAME.fullmatch(name):
                raise ValueError(f"restore target name {name!r}: use lower-case letters, "
                                 "digits, '.', '_' and '-' (at most 64)")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"restore target {name}: give an absolute directory")
            if any(part == ".." for part in path.split("/")):
                raise ValueError(f"restore target {name}: no '..' in its directory")
        return value


MAX_PATHS = 100
SNAPSHOT_REF = re.compile(r"latest|[0-9a-f]{8,64}")


def snapshot_path_problem(path: object) -> str | None:
    """Why `path` cannot name something inside a snapshot, or None: absolute, no '..'
    and no NUL (the server and the agent both check it)."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
        return f"{path!r}: a path inside the snapshot is absolute ('/data/pacs/x.dcm')"
    if "\0" in path or any(part == ".." for part in path.split("/")):
        return f"{path!r}: no '..' or NUL in a path inside the snapshot"
    if any("\ud800" <= c <= "\udfff" for c in path):  # JSON allows it; UTF-8 does not
        return "a path inside the snapshot is not valid text"
    return None


def snapshot_paths_problem(paths: object) -> str | None:
    """Why `paths` is not a list of at most MAX_PATHS paths inside a snapshot, or None
    (the server refuses the request with it, the agent the job)."""
    if not isinstance(paths, list) or len(paths) > MAX_PATHS:
        return f"paths: a list of at most {MAX_PATHS} paths inside the snapshot"
    for path in paths:
        problem = snapshot_path_problem(path)
        if problem is not None:
            return f"paths: {problem}"
    return None


DICOM_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
"""A DICOM UID's characters (at most 64 of them)."""


def dicom_items_problem(items: object) -> str | None:
    """Why `items` is not a list of studies to restore by the DICOM catalog, each
    `{"study": UID, "series"?: [UID, ...]}`, at most MAX_PATHS restores in all (a study,
    or each series named), or None (the server refuses the request with it, the agent
    the job)."""
    if not isinstance(items, list) or not items:
        return "dicom: a list of studies, each {study, series?}"
    restores = 0
    for item in items:
        if not isinstance(item, dict) or not set(item) <= {"study", "series"}:
            return "dicom: each item is {study, series?}"
        uids = [item.get("study")]
        series = item.get("series") or []
        if not isinstance(series, list):
            return "dicom: series is a list of Series Instance UIDs"
        uids += series
        for uid in uids:
            if not isinstance(uid, str) or len(uid) > 64 or not DICOM_UID.fullmatch(uid):
                return f"dicom: {str(uid)[:80]!r} is not a DICOM UID (digits and dots)"
        restores += max(1, len(series))
    if restores > MAX_PATHS:
        return f"dicom: at most {MAX_PATHS} studies and series in one restore"
    return None


def exact_pattern(path: str) -> str:
    """A restore include pattern that matches `path` itself (its glob characters
    escaped), anchored at the snapshot's root."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in path)
