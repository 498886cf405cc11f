"""What the consistency-group tests share (docs/pacs.md): the plan file's head and its PACS
system (an index database and a file tree in one group) and, for the end-to-end modules, a
throwaway archiving cluster (pg_server.repo_site) with `medark` run as the repository's
owner or as root."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import MEDARK, PASSWORD, Result
from pg_server import RepoSite, as_pg


def site_head(repo: str | Path, password_file: str | Path | None = None) -> str:
    """Site `main` and repository `local` at `repo` (its password in `password_file`, if
    given), the plan file's head before pacs_plan()."""
    password = f'password_file = "{password_file}"\n' if password_file else ""
    return f'[sites.main]\nlocation = "CN-SC"\n\n[repositories.local]\nsite = "main"\n' \
        f'url = "{repo}"\n{password}\n'


PACS_PLAN = """\
[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
{database}
group = "{group}"

[[systems.pacs.sources]]
type = "files"
paths = ["{storage}"]
group = "{group}"
pacs = "{pacs}"
{files_extra}
[plans.pacs]
system = "pacs"
repository = "local"
schedule = "0 2 * * *"
rpo = "1d"
rto = "4h"
retention = {{ daily = 7 }}
{plan_extra}"""


def pacs_plan(dsn: str, storage: str | Path, pacs: str, group: str = "pacs",
              files_extra: str = "", plan_extra: str = "", database: str | None = None
              ) -> str:
    """System `pacs` (its index database and storage root in group `group`) and plan
    `pacs` on repository `local`; the extras are TOML lines added to the files source
    and to the plan. `database`: the database source's lines instead of a postgres
    source on `dsn` (sqlite_source() gives Orthanc's SQLite index)."""
    database = database or f'type = "postgres"\ndsn = "{dsn}"'
    return PACS_PLAN.format(database=database, storage=storage, pacs=pacs, group=group,
                            files_extra=files_extra, plan_extra=plan_extra)


def sqlite_source(index: str | Path, stop: str, start: str) -> str:
    """The lines of a sqlite database source (Orthanc's index file, its service's stop
    and start commands) for pacs_plan()."""
    return (f'type = "sqlite"\npaths = ["{index}"]\nstop_command = "{stop}"\n'
            f'start_command = "{start}"')


@dataclass
class GroupSite(RepoSite):
    """The archiving cluster holding the PACS index, and the plan file."""

    config: Path

    def as_postgres(self, *args: str) -> Result:
        """medark as the postgres OS user, which owns the repository (archive_command)."""
        done = as_pg(self.as_postgres_argv(*args), env=self.env, timeout=600)
        return Result(done.returncode, done.stdout, done.stderr)

    def as_root(self, *args: str) -> Result:
        """medark as root, with its own HOME and cache (a restore, an operator)."""
        env = dict(self.env, MEDARK_PASSWORD=PASSWORD, HOME=str(self.base / "roothome"),
                   MEDARK_CACHE_DIR=str(self.base / "rootcache"))
        done = subprocess.run([MEDARK, "--repo", str(self.repo), *args], env=env,
                              capture_output=True, text=True, check=False, timeout=600)
        return Result(done.returncode, done.stdout, done.stderr)
