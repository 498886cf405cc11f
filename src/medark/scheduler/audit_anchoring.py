"""The daemon's periodic anchor of the audit trail (`[audit] anchor_repository`,
`anchor_every`): a child `medark --json audit anchor` stores the chain head in the
repository (service/audit_anchor.py), recorded as job `anchor` of plan `audit`; a
failure raises `audit_anchor_failed:REPOSITORY` (resolved by the next anchor that
succeeds), since records after the newest anchor are protected by the chain and the
signature only.

The child gets the repository in MEDARK_REPO and its password source as a backup does,
and the daemon's catalog in MEDARK_CATALOG (a PostgreSQL catalog's URL may hold a
password: never in argv); the audit key (MEDARK_AUDIT_KEY_FILE, or beside a SQLite
catalog) is the daemon's own. A repository a forget or prune holds is waited for
(`--retry-lock`, as a backup waits); still held at the end of the wait (exit 11), it is
not a failure: the next slot anchors. Nothing to anchor is no job either: an empty trail, or
one whose newest record is the note of the previous anchor (an idle trail would
otherwise add an object to the repository every interval, forever)."""

from __future__ import annotations

from datetime import datetime

from medark.catalog.audit_query import newest_record
from medark.catalog.store import Catalog
from medark.config.durations import format_config_duration
from medark.config.environment import CATALOG
from medark.config.plans import MedarkConfig
from medark.config.schedule import Schedule
from medark.scheduler.runner import (
    LOCK_WAIT,
    Launcher,
    Outcome,
    Step,
    medark_command,
    repository_env,
    run_job,
)
from medark.util import clock

ANCHOR_PLAN = "audit"
ANCHOR_KIND = "anchor"
ANCHOR_ACTION = "audit.anchor"


def anchor_schedule(config: MedarkConfig) -> Schedule | None:
    """Every `anchor_every`, the first at the daemon's start; None without a repository."""
    if config.audit.anchor_repository is None:
        return None
    every = config.audit.anchor_every
    return Schedule(f"every {format_config_duration(every)}", interval=every)


def anchor_step(config: MedarkConfig, repository: str, catalog_url: str,
                config_file: str | None = None, medark: list[str] | None = None) -> Step:
    argv = [*(medark or medark_command()), "--json", *LOCK_WAIT, "audit", "anchor"]
    if config_file:
        argv += ["--config", config_file]
    child_env = {"MEDARK_REPO": config.repositories[repository].url,
                 CATALOG.name: catalog_url, **repository_env(config, repository)}
    return Step(f"audit anchor {repository}", argv, child_env)


def run_anchor(config: MedarkConfig, catalog: Catalog, slot: datetime | None,
               launcher: Launcher, config_file: str | None = None) -> Outcome:
    """One anchor, recorded as job `anchor` of `audit` for the slot."""
    repository = config.audit.anchor_repository
    if repository is None:
        raise ValueError("no [audit] anchor_repository")
    idle = _idle(catalog)
    if idle is not None:
        now = clock.now()
        return Outcome(None, "skipped", now, now, error=idle)
    step = anchor_step(config, repository, catalog.url, config_file)
    return run_job(catalog, ANCHOR_PLAN, ANCHOR_KIND, [step], slot, 1, launcher,
                   busy_ok=True)


def _idle(catalog: Catalog) -> str | None:
    """Why there is nothing to anchor now, or None."""
    newest = newest_record(catalog)
    if newest is None:
        return "the audit trail is empty"
    if newest.action == ANCHOR_ACTION and newest.detail.get("seq") == newest.seq - 1:
        return f"nothing new since the anchor of record {newest.seq - 1}"
    return None
