"""Data residency of repositories (docs/compliance.md#data-residency): the location a
repository recorded at init and the verdict of policy/residency.py on it."""

from __future__ import annotations

from medark.errors import ResidencyViolation
from medark.policy.residency import CONFIG_KEY, Residency, SiteLocation, residency
from medark.repo.repository import Repository


def location_config(location: SiteLocation | None) -> dict[str, object] | None:
    """What `medark init --location` adds to the sealed config (`extra`)."""
    return None if location is None else {CONFIG_KEY: location.to_doc()}


def recorded_location(repo: Repository) -> SiteLocation | None:
    return SiteLocation.from_doc(repo.config.extra.get(CONFIG_KEY))


def repository_residency(repo: Repository) -> Residency:
    return residency(recorded_location(repo))


def destination_residency(repo: Repository, name: str, require: bool) -> Residency:
    """The verdict on a repository data is about to be copied into; with `require`, anything
    but compliant (an unknown location too) refuses with exit 14 before data moves."""
    verdict = repository_residency(repo)
    if require and not verdict.compliant:
        raise ResidencyViolation(
            f"destination {name}: {verdict.reason}; nothing was copied (--require-residency "
            "accepts only a destination recorded inside mainland China)")
    return verdict
