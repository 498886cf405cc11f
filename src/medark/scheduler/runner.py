"""Running one plan's job: the `medark` command as a child process, recorded in the catalog.

A child process per job, as resticprofile and autorestic run restic: a crash or a leak
in one backup never takes the daemon or another job down, SIGTERM reaches exactly the
job it is meant for, and the job runs the same code an operator runs by hand. Secrets
travel in the environment (the repository's password file or command, the database DSN),
never in argv, where any local user could read them from /proc.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.groups import groups_of
from medark.config.plans import MedarkConfig, Retention, Source
from medark.util import clock

ERROR_TAIL = 2000
"""Characters of a failed job's stderr kept in the catalog."""


@dataclass(frozen=True)
class Step:
    """One child process of a job: a source's backup."""

    source: str
    argv: list[str]
    env: dict[str, str]
    on_output: Callable[[str], None] | None = field(default=None, compare=False,
                                                    repr=False)
    """Called with each line of the child's standard output as it comes, by a launcher
    that follows the child (Children.launch; the plain launch() gives it all at the
    end): the agent streams a DR action's steps this way."""


@dataclass
class Outcome:
    job_id: int | None
    status: str
    started_at: datetime
    finished_at: datetime
    bytes_added: int = 0
    snapshot_ids: list[str] = field(default_factory=list)
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"job": self.job_id, "status": self.status,
                "started_at": clock.format_time(self.started_at),
                "finished_at": clock.format_time(self.finished_at),
                "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
                "bytes_added": self.bytes_added, "snapshot_ids": self.snapshot_ids,
                "error": self.error, "steps": self.steps}


def medark_command() -> list[str]:
    """This installation's `medark`: the script next to the running interpreter, else the
    module (a checkout run with `python -m`)."""
    script = Path(sys.executable).with_name("medark")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medark.cli.main"]


def repository_env(config: MedarkConfig, name: str, prefix: str = "MEDARK_") -> dict[str, str]:
    """How a child finds and opens repository `name`: its location and password source
    (MEDARK_REPO / MEDARK_PASSWORD_FILE, or MEDARK_FROM_* for a copy's source)."""
    repo = config.repositories[name]
    env = {}
    if repo.password_file:
        env[f"{prefix}PASSWORD_FILE"] = repo.password_file
    if repo.password_command:
        env[f"{prefix}PASSWORD_COMMAND"] = repo.password_command
    return env


def _plan_tags(config: MedarkConfig, plan_name: str) -> list[str]:
    """plan=, system= and, for a system holding medical records, records= (which keeps
    forget from undercutting the legal minimum: policy/records.py)."""
    system = config.plans[plan_name].system
    tags = ["--tag", f"plan={plan_name}", "--tag", f"system={system}"]
    records = config.systems[system].records
    return tags + (["--tag", f"records={records}"] if records != "none" else [])


def backup_steps(config: MedarkConfig, plan_name: str,
                 medark: list[str] | None = None) -> list[Step]:
    plan = config.plans[plan_name]
    env = {"MEDARK_REPO": config.repositories[plan.repository].url,
           **repository_env(config, plan.repository)}
    base = [*(medark or medark_command()), "--json", *LOCK_WAIT]
    tags = _plan_tags(config, plan_name)
    sources = config.systems[plan.system].sources
    groups = {g.database: g for g in groups_of(sources)}
    grouped = {i for g in groups.values() for i in (g.database, g.files)}
    steps = []
    for i, source in enumerate(sources):
        if i in groups:  # a consistency group: one step, database point first
            steps.append(_group_step(groups[i].name, source, sources[groups[i].files],
                                     base, tags, env))
        elif i not in grouped:
            steps.append(_step(source, base, tags, env))
    return steps


def _group_step(name: str, database: Source, files: Source, base: list[str],
                tags: list[str], env: dict[str, str]) -> Step:
    """`group backup` of a PACS's index and files (docs/pacs.md): the PostgreSQL or
    MariaDB index by its DSN (in the environment, as for their own backup steps),
    Orthanc's SQLite index by its file and the commands stopping and starting Orthanc
    around its copy."""
    query = ["--index-query", files.index_query] if files.index_query else []
    storages = [arg for sid, directory in sorted((files.storages or {}).items())
                for arg in ("--storage", f"{sid}={directory}")]
    argv = [*base, "group", "backup", "--name", name, "--pacs", files.pacs or "", "--root",
            files.paths[0], *query, *storages]
    if database.type == "sqlite":
        commands = ["--stop-command", database.stop_command, "--start-command",
                    database.start_command or ""] if database.stop_command else []
        return Step(f"group {name}", [*argv, "--sqlite", database.paths[0], *commands,
                                      *tags], env)
    if database.type == "mariadb":
        return Step(f"group {name}", [*argv, "--mariadb", *tags],
                    {**env, "MEDARK_MYSQL_DSN": database.dsn or ""})
    return Step(f"group {name}", [*argv, *tags], {**env, "MEDARK_PG_DSN": database.dsn or ""})


RETENTION_FLAGS = {"last": "--keep-last", "hourly": "--keep-hourly", "daily": "--keep-daily",
                   "weekly": "--keep-weekly", "monthly": "--keep-monthly",
                   "yearly": "--keep-yearly"}
LOCKED_EXIT = 11
LOCK_WAIT = ["--retry-lock", "30m"]
"""A backup or copy that finds the repository locked by a forget or prune waits for it:
the point is taken late rather than missed. Forget and prune do not wait (exit 11 skips
them; the next run catches up)."""


def retention_flags(retention: Retention) -> list[str]:
    """A configured retention as `forget`'s (and `copy`'s) --keep-* options."""
    keep: list[str] = []
    for name, flag in RETENTION_FLAGS.items():
        count = getattr(retention, name)
        if count:
            keep += [flag, str(count)]
    if retention.within is not None:
        keep += ["--keep-within", f"{max(1, int(retention.within.total_seconds() // 3600))}h"]
    return keep


def forget_step(config: MedarkConfig, plan_name: str, medark: list[str] | None = None,
                target: str | None = None) -> Step:
    """The plan's retention applied to its own snapshots (tag plan=NAME), per host and
    paths, in its repository or (with `target`) in that copy target with the target's
    retention; snapshots of medical records keep their yearly points and held or
    WORM-locked snapshots stay regardless (policy/records.py, engine/worm.py)."""
    plan = config.plans[plan_name]
    repository = target or plan.repository
    retention = plan.copy_retention(target) if target else plan.retention
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository)}
    return Step(f"forget {target}" if target else "forget",
                [*(medark or medark_command()), "--json", "forget", "--tag",
                 f"plan={plan_name}", "--group-by", "host,paths", *retention_flags(retention)],
                env)


def stream_step(config: MedarkConfig, plan_name: str, index: int,
                medark: list[str] | None = None) -> Step:
    """`pg wal-stream` (creating its slot) or `mysql binlog-stream` for the plan's
    streaming source number `index`."""
    plan = config.plans[plan_name]
    source = config.systems[plan.system].sources[index]
    env = {"MEDARK_REPO": config.repositories[plan.repository].url,
           **repository_env(config, plan.repository)}
    base = [*(medark or medark_command()), "--json"]
    if source.type == "postgres":
        slot = source.slot or "medark_" + "".join(c if c.isalnum() else "_" for c in plan_name)
        return Step(f"stream {source.type}", [*base, "pg", "wal-stream", "--slot", slot,
                                               "--create-slot"],
                    {**env, "MEDARK_PG_DSN": source.dsn or ""})
    return Step(f"stream {source.type}", [*base, "mysql", "binlog-stream"],
                {**env, "MEDARK_MYSQL_DSN": source.dsn or ""})


def copy_step(config: MedarkConfig, plan_name: str, target: str, follow: bool = False,
              medark: list[str] | None = None) -> Step:
    """The plan's snapshots (tag plan=NAME) and the WAL/binlog archives of its repository,
    copied to `target`; with `follow`, continuously."""
    plan = config.plans[plan_name]
    env = {"MEDARK_REPO": config.repositories[target].url, **repository_env(config, target),
           "MEDARK_FROM_REPO": config.repositories[plan.repository].url,
           **repository_env(config, plan.repository, "MEDARK_FROM_")}
    # only what the target's retention keeps: a snapshot its forget removed is not sent again
    argv = [*(medark or medark_command()), "--json", *LOCK_WAIT, "copy", "--tag",
            f"plan={plan_name}",
            *retention_flags(plan.copy_retention(target))]
    return Step(f"copy to {target}", [*argv, "--follow"] if follow else argv, env)


def _step(source: Source, base: list[str], tags: list[str], env: dict[str, str]) -> Step:
    if source.type == "files":
        return Step("files " + ", ".join(source.paths), [*base, "backup", *tags, "--",
                                                          *source.paths], env)
    if source.type == "postgres":
        return Step("postgres", [*base, "pg", "backup", *tags],
                    {**env, "MEDARK_PG_DSN": source.dsn or ""})
    if source.type == "mariadb":
        return Step("mariadb", [*base, "mysql", "backup", *tags],
                    {**env, "MEDARK_MYSQL_DSN": source.dsn or ""})
    filename = source.filename or "dump"
    return Step(f"command {filename}",
                [*base, "backup", "--stdin-from-command", "--stdin-filename", filename, *tags,
                 "--", *shlex.split(source.command or "")], env)


Launcher = Callable[[Step], subprocess.CompletedProcess[str]]


def launch(step: Step) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
    return subprocess.run(step.argv, env={**env, **step.env}, capture_output=True, text=True,
                          check=False)


def run_backup(config: MedarkConfig, plan_name: str, catalog: Catalog,
               scheduled_for: datetime | None = None, attempt: int = 1,
               launcher: Launcher = launch) -> Outcome:
    """Every source of the plan's system, one after the other; the job fails when any
    source fails (the others still run: a broken PACS mount must not cost the HIS its
    backup)."""
    return run_job(catalog, plan_name, "backup", backup_steps(config, plan_name),
                   scheduled_for, attempt, launcher)


def run_copy(config: MedarkConfig, plan_name: str, target: str, catalog: Catalog,
             scheduled_for: datetime | None = None, attempt: int = 1,
             launcher: Launcher = launch) -> Outcome:
    return run_job(catalog, plan_name, f"copy:{target}",
                   [copy_step(config, plan_name, target)], scheduled_for, attempt, launcher)


def prune_step(config: MedarkConfig, repository: str,
               medark: list[str] | None = None) -> Step:
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository)}
    return Step(f"prune {repository}", [*(medark or medark_command()), "--json", "prune"], env)


def run_prune(config: MedarkConfig, repository: str, catalog: Catalog,
              scheduled_for: datetime | None = None, launcher: Launcher = launch) -> Outcome:
    """Recorded under the plan name `repository:NAME`; a busy repository (exit 11) is
    skipped, not failed, like forget."""
    return run_job(catalog, f"repository:{repository}", "prune",
                   [prune_step(config, repository)], scheduled_for, 1, launcher, busy_ok=True)


def run_forget(config: MedarkConfig, plan_name: str, catalog: Catalog,
               launcher: Launcher = launch, target: str | None = None) -> Outcome:
    """In the plan's repository (job `forget`) or a copy target (`forget:TARGET`). A
    forget whose repository is busy (exit 11: another job holds a lock) is recorded as
    done, not failed: the next one catches up."""
    return run_job(catalog, plan_name, f"forget:{target}" if target else "forget",
                   [forget_step(config, plan_name, target=target)], None, 1, launcher,
                   busy_ok=True)


def run_job(catalog: Catalog, plan_name: str, kind: str, steps: list[Step],
            scheduled_for: datetime | None, attempt: int, launcher: Launcher,
            busy_ok: bool = False) -> Outcome:
    """Run the steps and record the job. `busy_ok` (maintenance: forget, prune, anchor):
    a step that found the repository locked by another command (exit 11) is not a
    failure, the next run catches up; the step records it as skipped, with its code."""
    started = clock.now()
    job_id = catalog.start(plan_name, kind, scheduled_for, attempt)
    outcome = Outcome(job_id, SUCCEEDED, started, started)
    if job_id is None:
        outcome.status, outcome.error = "skipped", "this schedule slot already ran"
        return outcome
    errors = []
    for step in steps:
        result = launcher(step)
        summary = _summary(result.stdout)
        done: dict[str, Any] = {"source": step.source, "exit_code": result.returncode}
        if result.returncode in (0, 3, 4) and summary.get("snapshot_id"):
            outcome.snapshot_ids.append(str(summary["snapshot_id"]))
            done["snapshot_id"] = summary["snapshot_id"]
        added = summary.get("data_added_packed", summary.get("bytes_stored"))
        outcome.bytes_added += int(added or 0)
        if busy_ok and result.returncode == LOCKED_EXIT:
            done["skipped"] = _error(result) or "the repository was locked"
        elif result.returncode != 0:
            reason = _error(result) or f"exited {result.returncode}"
            errors.append(f"{step.source}: {reason}")
            done["error"] = reason
        outcome.steps.append(done)
    outcome.finished_at = clock.now()
    if errors:
        outcome.status, outcome.error = FAILED, "; ".join(errors)[-ERROR_TAIL:]
    rpo = (outcome.finished_at - started).total_seconds() if not errors else None
    catalog.finish(job_id, outcome.status, bytes_added=outcome.bytes_added,
                   snapshot_id=outcome.snapshot_ids[-1] if outcome.snapshot_ids else None,
                   rpo_seconds=rpo, error=outcome.error, details={"steps": outcome.steps})
    return outcome


def _summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("message_type") == "summary":
            return doc
    return {}


def _error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.removeprefix("medark: ") for ln in result.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else ""
