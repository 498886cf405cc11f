"""What the PostgreSQL DR tests share: the site they run against (a primary/standby pair,
pgbouncer in front of the primary, the test HIS app writing through it), and the
plan-file text: two sites (main, east), one system `his` with its plan, and the
`[dr.his]` nodes of the pair."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from his_app import ORDERS_DDL
from pg_pair import PgPair, pg_pair
from pg_server import PgServer
from pgbouncer_server import PgbouncerServer
from write_load import HisApp


@dataclass
class Site:
    pair: PgPair
    pooler: PgbouncerServer
    app: HisApp
    work: Path

    @property
    def catalog(self) -> str:
        return f"sqlite:///{self.work / 'catalog.db'}"


@contextmanager
def his_site(work: Path) -> Iterator[Site]:
    """A pair with the orders table, pgbouncer in front of the primary and the HIS app
    behind it; everything stopped afterwards."""
    with pg_pair() as pair:
        pair.primary.sql(ORDERS_DDL)
        pooler = PgbouncerServer(pair.primary.port)
        pooler.start()
        app = HisApp(pooler.client_dsn)
        try:
            app.start()
            yield Site(pair, pooler, app, work)
        finally:
            app.stop()
            pooler.stop()


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


UNIT = '{ unit = "postgresql@15-main.service" }'
"""A node's control for tests that only read the configuration and the catalog."""


def dr_nodes(system: str, primary_dsn: str, standby_dsn: str, primary_control: str = UNIT,
             standby_control: str = UNIT, extra: str = "") -> str:
    """`[dr.SYSTEM.primary]` at site main and `[dr.SYSTEM.standby]` at east (PostgreSQL);
    `extra` lines go into both."""
    return "".join(f"""
[dr.{system}.{role}]
kind = "postgres"
site = "{site}"
dsn = "{dsn}"
control = {control}
{extra}""" for role, site, dsn, control in (("primary", "main", primary_dsn, primary_control),
                                            ("standby", "east", standby_dsn, standby_control)))


def datadir_control(data: Path, pg_ctl: str) -> str:
    return f'{{ datadir = "{data}", pg_ctl = "{pg_ctl}" }}'


def pg_nodes(primary: PgServer, standby: PgServer, system: str = "his") -> str:
    """The nodes of a real pair, each controlled through its data directory and pg_ctl."""
    return dr_nodes(system, primary.dsn, standby.dsn,
                    datadir_control(primary.data, primary.tool("pg_ctl")),
                    datadir_control(standby.data, standby.tool("pg_ctl")))
