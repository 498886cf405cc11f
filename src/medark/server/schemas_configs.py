"""Request and response bodies of the configuration endpoints (routes/configs.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any

from pydantic import Field

from medark.server.configs import MAX_COMMENT, MAX_DOCUMENT
from medark.server.schemas import Reply, Strict

MAX_VERSION = 2**31 - 1
"""A version fits the catalog's integer column."""


class ConfigChange(Strict):
    document: str = Field(min_length=1, max_length=MAX_DOCUMENT)
    """The whole medark.toml document (docs/configuration.md)."""
    comment: str = Field(default="", max_length=MAX_COMMENT)
    base_version: int | None = Field(ge=1, le=MAX_VERSION)
    """The version the document was edited from; null for an institution's first."""


class VersionView(Reply):
    institution: str
    version: int
    sha256: str
    author: str
    created_at: str
    comment: str


class ConfigView(VersionView):
    """A version with its document."""

    document: str


class ConfigReply(Reply):
    config: ConfigView


class VersionList(Reply):
    versions: list[VersionView]


class ConfigDiff(Reply):
    institution: str
    from_version: int
    to_version: int
    diff: str
    """A unified diff (empty when the versions are the same)."""


class Invalid(Reply):
    """A stored version that no longer passes the checks (left out of the view)."""

    institution: str
    version: int
    message: str


class SiteView(Reply):
    institution: str
    name: str
    title: str
    location: str
    role: str


class SystemView(Reply):
    institution: str
    name: str
    title: str
    owner: str
    criticality: str
    records: str
    sources: list[str]
    plans: list[str]


class RepositoryView(Reply):
    institution: str
    name: str
    site: str
    url: str
    max_jobs: int
    prune: str | None


class CopyView(Reply):
    to: str
    schedule: str


class PlanView(Reply):
    institution: str
    name: str
    system: str
    repository: str
    schedule: str
    rpo: str
    rto: str
    retention: dict[str, Any]
    copies: list[CopyView]
    restore_test: str | None


class SiteList(Reply):
    sites: list[SiteView]
    invalid: list[Invalid]


class SystemList(Reply):
    systems: list[SystemView]
    invalid: list[Invalid]


class RepositoryList(Reply):
    repositories: list[RepositoryView]
    invalid: list[Invalid]


class PlanList(Reply):
    plans: list[PlanView]
    invalid: list[Invalid]
