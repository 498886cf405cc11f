"""The plan-file text DR tests share: two sites (main, east), one system `his` with its
plan, and the `[dr.his]` nodes of a PostgreSQL pair (tests/pg_pair.py's servers)."""

from __future__ import annotations

from pg_server import PgServer


def preamble(dsn: str, repositories: str = "", kind: str = "postgres",
             system: str = "his") -> str:
    """Sites main and east, repository `local` (unused unless `repositories` replaces it:
    its own [repositories.*] tables, `local` among them), `system` with one source and a
    nightly plan."""
    repos = repositories or """
[repositories.local]
site = "main"
url = "/nonexistent/medark"
password_file = "/nonexistent/password"
"""
    return f"""
[sites.main]
name = "main"
location = "CN-SC"

[sites.east]
name = "east"
location = "CN-SC"
role = "campus"
{repos}
[systems.{system}]
owner = "IT"

[[systems.{system}.sources]]
type = "{kind}"
dsn = "{dsn}"

[plans.{system}]
system = "{system}"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = {{ daily = 14 }}
"""


def pg_nodes(primary: PgServer, standby: PgServer, system: str = "his") -> str:
    """`[dr.SYSTEM.primary]` at main and `[dr.SYSTEM.standby]` at east, each controlled
    through its data directory and pg_ctl."""
    return "".join(f"""
[dr.{system}.{role}]
kind = "postgres"
site = "{site}"
dsn = "{server.dsn}"
control = {{ datadir = "{server.data}", pg_ctl = "{server.tool('pg_ctl')}" }}
""" for role, site, server in (("primary", "main", primary), ("standby", "east", standby)))
