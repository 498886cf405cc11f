"""Application-level DR of a protected system: the `[dr.SYSTEM]` tables (docs/dr.md).

A primary and a warm standby (PostgreSQL or MariaDB) at two sites, how the standby is fed
(native streaming, or replay from a Medark repository when the DR site has no path to the
primary), the application services at each site, the health checks that say the
application answers, how clients find the new primary, how the old one is fenced, and
the limits a failover keeps. The schema refuses unknown keys as config/plans.py does;
`dr_problems` returns the cross-checks that need the rest of the file (sites, systems,
repositories) or several keys at once, each with its key path, so that `config check`
reports every mistake in one run. Nothing here connects to a server.

The models derive from their own `Model` base (the same settings as config/plans.py's):
plans.py holds this module's tables in `MedarkConfig`, so it cannot be imported here.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from medark.config.durations import parse_config_duration
from medark.config.schedule import Schedule

Path = tuple[str | int, ...]
Kind = Literal["postgres", "mariadb"]

DEFAULT_PORTS = {"postgres": 5432, "mariadb": 3306}
_SLOT = re.compile(r"[a-z0-9_]{1,63}")
_ARTICLE = {"http": "an", "tcp": "a", "sql": "an"}
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '30s', '1min' or '1h'")
    return parse_config_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _has_password(dsn: str) -> bool:
    """A password spelt in a DSN: `user:pw@` of a URI, or a `password=` item."""
    if "://" in dsn:
        try:
            return urlsplit(dsn).password is not None
        except ValueError:
            return False
    return any(item.partition("=")[0].strip().lower() == "password" for item in dsn.split())


def dsn_address(dsn: str, kind: Kind) -> tuple[str, int] | None:
    """(host, port) the DSN connects to (no host: this machine's socket); None when the
    DSN cannot be read that far (the node check then compares the text)."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            port = parts.port
        except ValueError:
            return None
        return (parts.hostname or "localhost", port or DEFAULT_PORTS[kind])
    items = dict(item.partition("=")[::2] for item in dsn.split())
    try:
        port = int(items.get("port") or DEFAULT_PORTS[kind])
    except ValueError:
        return None
    host = items.get("host") or items.get("hostaddr") or items.get("socket") or "localhost"
    return (host, port)


class Control(Model):
    """How Medark starts, stops and asks about one database server: exactly one of a data
    directory with the server's own program, a systemd unit, or three commands."""

    datadir: str | None = None
    """The server's data directory (with pg_ctl or mariadbd)."""
    pg_ctl: str | None = None
    """PostgreSQL with datadir: the pg_ctl program, e.g. /usr/lib/postgresql/15/bin/pg_ctl."""
    mariadbd: str | None = None
    """MariaDB with datadir: the server program, e.g. /usr/sbin/mariadbd."""
    unit: str | None = None
    """A systemd unit (postgresql@15-main.service, mariadb.service)."""
    start: str | None = None
    """With stop and status: commands run by /bin/sh (a server managed by other tools)."""
    stop: str | None = None
    status: str | None = None
    """Exits 0 while the server runs."""

    def problems(self, kind: Kind) -> list[tuple[Path, str]]:
        styles = [name for name, given in (
            ("datadir", self.datadir is not None), ("unit", self.unit is not None),
            ("commands", any(c is not None for c in (self.start, self.stop, self.status))))
            if given]
        if len(styles) != 1:
            said = " and ".join(styles) if styles else "nothing"
            return [((), f"give exactly one of datadir (with {_program(kind)}), unit (systemd) "
                         f"or start/stop/status commands; found {said}")]
        found: list[tuple[Path, str]] = []
        if self.datadir is not None and getattr(self, _program(kind)) is None:
            found.append(((_program(kind),), f"a {kind} datadir needs {_program(kind)} "
                          "(the path of the program)"))
        wrong = "mariadbd" if kind == "postgres" else "pg_ctl"
        if getattr(self, wrong) is not None:
            found.append(((wrong,), f"{wrong} belongs to a "
                          f"{'mariadb' if kind == 'postgres' else 'postgres'} node"))
        elif self.datadir is None and (self.pg_ctl or self.mariadbd):
            found.append(((_program(kind),), f"{_program(kind)} goes with datadir"))
        if styles == ["commands"]:
            found += [((name,), "commands need start, stop and status")
                      for name in ("start", "stop", "status") if getattr(self, name) is None]
        return found


def _program(kind: Kind) -> str:
    return "pg_ctl" if kind == "postgres" else "mariadbd"


class Node(Model):
    kind: Kind
    site: str
    """A key of [sites]."""
    dsn: str
    """libpq (`host=10.0.0.11 port=5432 user=medark dbname=his` or postgresql://) or
    MariaDB (`mysql://medark@10.0.0.12:3306/`); no password in it: password_file, or the
    DSN's user by trust/peer/unix_socket authentication."""
    password_file: str | None = None
    """The password of the DSN's user, first line of this file (as repositories do)."""
    control: Control
    medark_command: str | None = None
    """How the database's OS user runs medark, for the restore_command of a repository
    feed written when this node is made a standby again (default: this medark's path)."""

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        if not value:
            raise ValueError("a DSN is required, e.g. 'host=10.0.0.11 user=medark dbname=his'")
        if _has_password(value):
            raise ValueError("no password in the DSN (it would be printed and logged): put "
                             "it in password_file")
        return value

    def address(self) -> tuple[str, int] | None:
        return dsn_address(self.dsn, self.kind)


class Service(Model):
    """One application service at a site, started in `order` after a switch to that site
    and stopped in reverse order before it."""

    name: str
    unit: str | None = None
    """A systemd unit; else start and stop commands."""
    start: str | None = None
    stop: str | None = None
    order: int = 0
    """Lower starts first; equal orders start together."""
    start_timeout: Duration = timedelta(seconds=60)
    """How long the start may take before the switch reports it failed."""

    def problems(self) -> list[tuple[Path, str]]:
        if self.unit is not None and (self.start or self.stop):
            return [(("unit",), "give a systemd unit or start/stop commands, not both")]
        if self.unit is None and not (self.start and self.stop):
            return [(("start",), "a service needs a systemd unit, or both start and stop")]
        return []


class Health(Model):
    """A check that the application answers: `http`, `tcp` or `sql`. It must pass within
    `timeout` after a switch or in a drill (retried until then)."""

    type: Literal["http", "tcp", "sql"]
    name: str = ""
    site: str | None = None
    """Only when this site (a key of [sites]) is the primary one; unset: always."""
    url: str | None = None
    """http: the URL fetched (GET)."""
    expect_status: int | None = Field(default=None, ge=100, le=599)
    """http: the status wanted (default 200)."""
    expect_body: str | None = None
    """http: a text the body must contain."""
    address: str | None = None
    """tcp: HOST:PORT that must accept a connection."""
    query: str | None = None
    """sql: run on the new primary."""
    expect: str | None = None
    """sql: the first value wanted (as text); unset: any value but false, 0, NULL or ''."""
    timeout: Duration = timedelta(seconds=30)

    def problems(self) -> list[tuple[Path, str]]:
        needs = {"http": "url", "tcp": "address", "sql": "query"}
        owners = {"url": "http", "expect_status": "http", "expect_body": "http",
                  "address": "tcp", "query": "sql", "expect": "sql"}
        found: list[tuple[Path, str]] = []
        if getattr(self, needs[self.type]) is None:
            found.append(((needs[self.type],), f"{_ARTICLE[self.type]} {self.type} check needs "
                          f"{needs[self.type]}"))
        found += [((key,), f"{key} belongs to {_ARTICLE[owner]} {owner} check, not {self.type}")
                  for key, owner in owners.items()
                  if owner != self.type and getattr(self, key) is not None]
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            found.append((("url",), "a health URL starts with http:// or https://"))
        if self.address is not None and not _ADDRESS.fullmatch(self.address):
            found.append((("address",), f"invalid address {self.address!r}: use HOST:PORT"))
        return found


class ClientSwitch(Model):
    """How clients find the new primary: pgbouncer (its [databases] entry rewritten and
    reloaded, requests held by PAUSE meanwhile), haproxy (the runtime API moves the
    backend's traffic), or a hook (a virtual IP or DNS change) handed the address in
    MEDARK_DR_NEW_PRIMARY_HOST and MEDARK_DR_NEW_PRIMARY_PORT."""

    type: Literal["pgbouncer", "haproxy", "hook"]
    ini: str | None = None
    """pgbouncer: its configuration file, whose entry for `database` is rewritten."""
    admin_dsn: str | None = None
    """pgbouncer: its admin console (`host=127.0.0.1 port=6432 dbname=pgbouncer`), for
    PAUSE, RELOAD and RESUME."""
    database: str | None = None
    """pgbouncer: the database name clients connect to."""
    socket: str | None = None
    """haproxy: the runtime API socket (stats socket ... level admin)."""
    backend: str | None = None
    """haproxy: the backend whose servers are the two nodes."""
    primary_server: str | None = None
    """haproxy: the backend's server for the primary node."""
    standby_server: str | None = None
    """haproxy: the backend's server for the standby node."""
    command: str | None = None
    """hook: run by /bin/sh; exit 0 means clients now reach the new primary."""

    def problems(self) -> list[tuple[Path, str]]:
        needs = {"pgbouncer": ("database",),
                 "haproxy": ("socket", "backend", "primary_server", "standby_server"),
                 "hook": ("command",)}
        owners = {"ini": "pgbouncer", "admin_dsn": "pgbouncer", "database": "pgbouncer",
                  "socket": "haproxy", "backend": "haproxy", "primary_server": "haproxy",
                  "standby_server": "haproxy", "command": "hook"}
        found: list[tuple[Path, str]] = [
            ((key,), f"a {self.type} client switch needs {key}")
            for key in needs[self.type] if getattr(self, key) is None]
        if self.type == "pgbouncer" and self.ini is None and self.admin_dsn is None:
            found.append((("ini",), "a pgbouncer client switch needs ini (its configuration "
                          "file) or admin_dsn (its admin console)"))
        if self.admin_dsn is not None and _has_password(self.admin_dsn):
            found.append((("admin_dsn",), "no password in the DSN: use pgbouncer's auth_file "
                          "or trust for the admin user"))
        found += [((key,), f"{key} belongs to a {owner} client switch, not {self.type}")
                  for key, owner in owners.items()
                  if owner != self.type and getattr(self, key) is not None]
        return found


class Fencing(Model):
    """How the old primary is kept from taking writes: `stop` it, make it `readonly` and
    end its sessions, or a `hook` (a power switch, a firewall rule). Written
    `fencing = "readonly"` or `fencing = { type = "hook", command = "..." }`."""

    type: Literal["stop", "readonly", "hook"]
    command: str | None = None
    """hook: run by /bin/sh with MEDARK_DR_OLD_PRIMARY_HOST/PORT; exit 0: fenced."""

    def problems(self) -> list[tuple[Path, str]]:
        if self.type == "hook" and not self.command:
            return [(("command",), "a fencing hook needs command")]
        if self.type != "hook" and self.command is not None:
            return [(("command",), f"command belongs to a hook, not {self.type} fencing")]
        return []


class DrConf(Model):
    """One protected system's DR: `[dr.SYSTEM]`, SYSTEM a key of [systems]."""

    primary: Node
    standby: Node
    feed: Literal["stream", "repository"] = "stream"
    """stream: native streaming replication (PostgreSQL with a slot, MariaDB by GTID);
    repository: the standby replays WAL/binlogs from a Medark repository (the offsite copy
    is enough: no network path from the DR site to the primary is needed)."""
    slot: str | None = None
    """PostgreSQL stream: the replication slot on the primary (default medark_dr_SYSTEM)."""
    repository: str | None = None
    """feed = repository: the repository (a key of [repositories]) replayed from."""
    services: dict[str, list[Service]] = {}
    """Per site (a key of [sites]): the application services started there when it
    becomes the primary site."""
    health: list[Health] = []
    client_switch: ClientSwitch | None = None
    """Unset: clients are redirected by the services' own configuration."""
    fencing: Fencing = Fencing(type="readonly")
    max_lag_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    """A failover is refused (without --force) when the standby is further behind: the
    default is one WAL segment, what a repository-fed standby may lag between archives."""
    max_lag: Duration = timedelta(minutes=1)
    """The same in time: the age of the newest replayed commit against the primary's."""
    synchronous: bool = False
    """Commits wait until the standby has them (PostgreSQL synchronous_standby_names,
    MariaDB semi-sync): a failover loses no acknowledged commit, at the cost of every
    commit waiting on the DR link. Needs feed = stream."""
    on_sync_loss: Literal["block", "degrade"] = "degrade"
    """synchronous, standby lost: `block` keeps commits waiting (no loss, no service);
    `degrade` turns replication asynchronous and raises an alert until it is back."""
    drill: str | None = None
    """When the daemon runs `dr drill` (a cron or interval, e.g. "0 3 1 * *"); unset: never."""

    @model_validator(mode="before")
    @classmethod
    def _fencing_shorthand(cls, data: Any) -> Any:
        """`fencing = "stop"` for `fencing = { type = "stop" }`."""
        if isinstance(data, dict) and isinstance(data.get("fencing"), str):
            return {**data, "fencing": {"type": data["fencing"]}}
        return data

    @field_validator("slot")
    @classmethod
    def _slot(cls, value: str | None) -> str | None:
        if value is not None and not _SLOT.fullmatch(value):
            raise ValueError(f"invalid slot name {value!r}: lower-case letters, digits and _, "
                             "at most 63")
        return value

    @field_validator("drill")
    @classmethod
    def _drill(cls, value: str | None) -> str | None:
        if value is not None and Schedule.parse(value).continuous:
            raise ValueError("a drill cannot be continuous: give a cron or interval")
        return value

    def slot_name(self, system: str) -> str | None:
        """The replication slot a PostgreSQL stream feed uses."""
        if self.feed != "stream" or self.primary.kind != "postgres":
            return None
        return self.slot or f"medark_dr_{re.sub(r'[^a-z0-9_]', '_', system.lower())}"[:63]


def dr_problems(dr: dict[str, DrConf], systems: Collection[str], sites: Collection[str],
                repositories: Collection[str]) -> list[tuple[Path, str]]:
    """Every cross-check of the [dr] tables: (key path, message). config/salvage.py's
    _READS lists the ones that read another key than they report."""
    found: list[tuple[Path, str]] = []
    for system, conf in dr.items():
        at: Path = ("dr", system)
        if system not in systems:
            found.append((at, _unknown("system", system, systems)))
        found += [((*at, *where), message)
                  for where, message in _system_problems(conf, sites, repositories)]
    return found


def _system_problems(conf: DrConf, sites: Collection[str], repositories: Collection[str]
                     ) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for role in ("primary", "standby"):
        node: Node = getattr(conf, role)
        if node.site not in sites:
            found.append(((role, "site"), _unknown("site", node.site, sites)))
        if role == "primary" or node.kind == conf.primary.kind:  # else: which kind is meant?
            found += [((role, "control", *where), message)
                      for where, message in node.control.problems(node.kind)]
    found += _node_pair_problems(conf)
    found += _feed_problems(conf, repositories)
    node_sites = {conf.primary.site, conf.standby.site}
    for site, services in conf.services.items():
        if site not in sites:
            found.append((("services", site), _unknown("site", site, sites)))
        elif site not in node_sites and node_sites <= set(sites):
            found.append((("services", site), f"site {site!r} holds neither the primary nor "
                          f"the standby ({' and '.join(sorted(node_sites))}): its services "
                          "would never start"))
        for i, service in enumerate(services):
            found += [(("services", site, i, *where), message)
                      for where, message in service.problems()]
    for i, check in enumerate(conf.health):
        found += [(("health", i, *where), message) for where, message in check.problems()]
        if check.site is not None and check.site not in sites:
            found.append((("health", i, "site"), _unknown("site", check.site, sites)))
    if conf.client_switch is not None:
        found += [(("client_switch", *where), message)
                  for where, message in conf.client_switch.problems()]
        if conf.client_switch.type == "pgbouncer" and conf.primary.kind == "mariadb":
            found.append((("client_switch", "type"), "pgbouncer pools PostgreSQL only: use "
                          "haproxy or a hook for MariaDB"))
    found += [(("fencing", *where), message) for where, message in conf.fencing.problems()]
    return found


def _node_pair_problems(conf: DrConf) -> list[tuple[Path, str]]:
    primary, standby = conf.primary, conf.standby
    if primary.kind != standby.kind:
        return [(("standby", "kind"), f"the standby is {standby.kind} but the primary is "
                 f"{primary.kind}: a standby replicates a server of its own kind")]
    same = primary.dsn.split() == standby.dsn.split() or (
        primary.address() is not None and primary.address() == standby.address())
    if same:
        host, port = standby.address() or ("?", 0)
        return [(("standby", "dsn"), f"the primary and the standby are the same node "
                 f"({host}:{port}): the standby must be another server")]
    return []


def _feed_problems(conf: DrConf, repositories: Collection[str]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if conf.feed == "repository":
        if conf.repository is None:
            found.append((("feed",), "feed = \"repository\" needs repository = NAME, the "
                          "repository (a key of [repositories]) the standby replays from"))
        elif conf.repository not in repositories:
            found.append((("repository",), _unknown("repository", conf.repository,
                                                    repositories)))
        if conf.slot is not None:
            found.append((("slot",), "a slot belongs to feed = \"stream\""))
        if conf.synchronous:
            found.append((("synchronous",), "synchronous needs feed = \"stream\": a standby "
                          "fed from a repository sees a commit only once its WAL/binlog is "
                          "archived, so no commit can wait for it; stream to the standby for "
                          "zero loss"))
    else:
        if conf.repository is not None:
            found.append((("repository",), "repository belongs to feed = \"repository\" "
                          "(this standby streams from the primary)"))
        if conf.slot is not None and conf.primary.kind == "mariadb":
            found.append((("slot",), "a MariaDB stream feed needs no slot (it replicates by "
                          "GTID): remove slot"))
    return found


def _unknown(kind: str, name: str, known: Collection[str]) -> str:
    choices = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {name!r} (defined: {choices})"
