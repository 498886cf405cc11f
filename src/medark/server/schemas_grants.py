"""Request and response bodies of the grants and snapshots routes (schemas.py holds the
shared base classes).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Annotated

from pydantic import Field

from medark.server.accounts import TITLE_CHARACTERS
from medark.server.schemas import NAMED, Reply, Strict

Text = Annotated[str, Field(min_length=1, max_length=1000,
                            json_schema_extra={"pattern": f"^{TITLE_CHARACTERS}+$"})]
SystemName = Annotated[str, Field(min_length=1, max_length=64, json_schema_extra=NAMED)]
SnapshotRef = Annotated[str, Field(min_length=8, max_length=64,
                                   json_schema_extra={"pattern": "^[0-9a-f]{8,64}$"})]
Moment = Annotated[str, Field(min_length=1, max_length=40,
                              json_schema_extra={"format": "date-time"})]
"""RFC 3339 (a time without a zone is UTC); checked by the code (clock.parse_time)."""


class SystemsScope(Strict):
    systems: list[SystemName] = Field(min_length=1, max_length=50)


class SnapshotsScope(Strict):
    snapshots: list[SnapshotRef] = Field(min_length=1, max_length=50)


class NewGrant(Strict):
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    """The institution whose data is wanted (its security administrator decides)."""
    scope: SystemsScope | SnapshotsScope
    purpose: Text
    starts_at: Moment | None = None
    """Default (or a time in the past): now."""
    ends_at: Moment
    """At most 30 days after the start."""


class Decision(Strict):
    note: Text | None = None


class GrantView(Reply):
    id: int
    requester: str
    from_institution: str
    to_institution: str
    scope: dict[str, list[str]]
    purpose: str
    starts_at: str | None
    ends_at: str | None
    state: str
    active: bool
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None
    revoked_by: str | None
    revoked_at: str | None
    created_at: str | None


class GrantReply(Reply):
    grant: GrantView


class GrantList(Reply):
    grants: list[GrantView]


class SnapshotView(Reply):
    id: str
    short_id: str
    time: str
    host: str
    tags: list[str]
    paths: list[str]
    size: int | None
    """Bytes the backup read (its summary's total_bytes_processed), when recorded."""
    repository: str
    dicom_instances: int | None = None
    """Instances its DICOM catalog holds; null when its backup made none."""


class SnapshotList(Reply):
    institution: str
    system: str
    grant: int | None
    snapshots: list[SnapshotView]


class Entry(Reply):
    name: str
    type: str
    size: int | None
    mtime: str


class TreeReply(Reply):
    snapshot: str
    path: str
    grant: int | None
    entries: list[Entry]


class Match(Reply):
    path: str
    type: str
    size: int | None
    mtime: str


class FindReply(Reply):
    snapshot: str
    pattern: str
    grant: int | None
    matches: list[Match]
    truncated: bool
