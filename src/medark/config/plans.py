"""The protection configuration: sites, repositories, systems and plans (one TOML file).

Validated with pydantic: unknown keys are refused (a misspelt `retension` must not turn
into "keep nothing"), every duration and schedule is parsed here, and cross-references
(a plan's system and repository, a copy's target, a repository's site) and the medical
record minimums are checked by `problems()` so that every mistake in a file is reported
at once, each with its key path (config/loader.py adds file and line).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from medark.config.agent_conf import AgentConf
from medark.config.dbaudit import DbAuditConf, audit_problems
from medark.config.dr import DrConf, dr_problems
from medark.config.durations import parse_config_duration
from medark.config.groups import group_problems
from medark.config.netconfig import NetconfigConf
from medark.config.records import RECORD_MINIMUM
from medark.config.schedule import Schedule

UNLIMITED = -1
DEFAULT_CATALOG = "sqlite:////var/lib/medark/catalog.sqlite"

Path = tuple[str | int, ...]


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '15min', '1h' or '30y'")
    return parse_config_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Site(Model):
    name: str = ""
    """Display name (主院区, 东院区, 区域灾备中心)."""
    location: str
    """Country and region, 'CN-SC' (data residency: docs/compliance.md#data-residency)."""
    role: Literal["production", "campus", "regional"] = "production"

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        return value.upper()  # its form is checked by service/plans.py (policy/residency)


class RepositoryConf(Model):
    site: str
    url: str
    password_file: str | None = None
    password_command: str | None = None
    max_jobs: int = Field(default=1, ge=1)
    """Jobs writing to this repository at once (the daemon queues the rest)."""
    prune: str | None = None
    """When the daemon prunes it (removes data no snapshot needs any more), e.g.
    "0 4 * * 0"; None: never (prune it yourself)."""

    @field_validator("prune")
    @classmethod
    def _prune(cls, value: str | None) -> str | None:
        if value is not None and Schedule.parse(value).continuous:
            raise ValueError("prune cannot be continuous: give a cron or interval")
        return value


class Source(Model):
    type: Literal["files", "postgres", "mariadb", "command", "sqlite"]
    """sqlite: Orthanc's SQLite index, only as a consistency group's database."""
    paths: list[str] = []
    dsn: str | None = None
    """postgres/mariadb: the connection string (no password in it: use the server's
    password file or the environment)."""
    command: str | None = None
    """command: a dump program whose standard output is backed up."""
    filename: str | None = None
    stream: bool = False
    """postgres / mariadb: the daemon keeps `pg wal-stream` / `mysql binlog-stream`
    running (an RPO of seconds without archive_command)."""
    slot: str | None = None
    """postgres with stream: the replication slot (default medark_PLAN)."""
    group: str | None = None
    """Sources of one system sharing a group name are captured as one restorable point
    (a database and a files source: docs/pacs.md)."""
    pacs: Literal["orthanc", "dcm4chee", "sql"] | None = None
    """files in a group: how the database's index names its files (docs/pacs.md)."""
    index_query: str | None = None
    """pacs = "sql": a query returning each file's path (and optionally its size)."""
    storages: dict[str, str] | None = None
    """pacs = "dcm4chee": each storage ID (dcmStorageID) to its directory inside the
    files source's path, e.g. { fs1 = "/storage/fs1" } (docs/pacs.md)."""
    stop_command: str | None = None
    """sqlite: a shell command stopping the PACS before its index is copied (e.g.
    "systemctl stop orthanc": a running Orthanc holds its SQLite index alone)."""
    start_command: str | None = None
    """sqlite: the shell command starting it again, always run after the copy."""
    audit: DbAuditConf | None = None
    """postgres / mariadb: the server's audit log the daemon collects (docs/dbaudit.md)."""


class System(Model):
    name: str = ""
    owner: str
    criticality: Literal["core", "important", "general"] = "important"
    records: Literal["none", "outpatient", "inpatient"] = "none"
    """Which medical records the system holds: sets the minimum retention of its plans."""
    sources: list[Source] = Field(min_length=1)


class Retention(Model):
    last: int = Field(default=0, ge=UNLIMITED)
    """Keep the newest N snapshots (per host and paths)."""
    hourly: int = Field(default=0, ge=UNLIMITED)
    daily: int = Field(default=0, ge=UNLIMITED)
    weekly: int = Field(default=0, ge=UNLIMITED)
    monthly: int = Field(default=0, ge=UNLIMITED)
    yearly: int = Field(default=0, ge=UNLIMITED)
    within: Duration | None = None
    """Keep every snapshot newer than this."""

    def reach(self) -> timedelta | None:
        """How far back the policy keeps points (None: forever). A count of N buckets
        reaches N buckets back, as restic's --keep-* do."""
        counts = {"hourly": timedelta(hours=1), "daily": timedelta(days=1),
                  "weekly": timedelta(weeks=1), "monthly": timedelta(days=30),
                  "yearly": timedelta(days=365)}
        reach = self.within or timedelta(0)
        if self.last == UNLIMITED:
            return None
        for name, bucket in counts.items():
            count = getattr(self, name)
            if count == UNLIMITED:
                return None
            reach = max(reach, count * bucket)
        return reach


class CopyConf(Model):
    to: str
    schedule: str = "continuous"
    retention: Retention | None = None
    """The copy target's own retention (GFS, typically longer at a DR site), applied by
    a forget on the target after each copy; None: the plan's retention."""

    def parsed_schedule(self) -> Schedule:
        return Schedule.parse(self.schedule)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        Schedule.parse(value)
        return value


class RestoreTest(Model):
    schedule: str
    checks: list[str] = []
    """Commands run in the sandbox the points were restored into; each must exit 0."""
    sql: list[str] = []
    """Queries run on every restored database (PostgreSQL: in the source DSN's database);
    each must return a first value that is not false, 0, NULL or empty."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if Schedule.parse(value).continuous:
            raise ValueError("a restore test cannot be continuous: give a cron or interval")
        return value


class OffsiteRestoreTest(RestoreTest):
    repository: str
    """The copy target restored from: the achieved offsite RTO."""


RESTORE_TEST = "restore_test"


class Plan(Model):
    system: str
    repository: str
    schedule: str
    jitter: Duration = timedelta(0)
    retention: Retention
    copies: list[CopyConf] = []
    rpo: Duration
    rto: Duration
    restore_test: RestoreTest | None = None
    offsite_restore_test: OffsiteRestoreTest | None = None
    retries: int = Field(default=2, ge=0)

    def restore_tests(self) -> list[tuple[str, str, RestoreTest]]:
        """(job kind, repository restored from, test) of each restore test: `restore_test`
        from the plan's repository, `restore_test:TARGET` from a copy."""
        found: list[tuple[str, str, RestoreTest]] = []
        if self.restore_test is not None:
            found.append((RESTORE_TEST, self.repository, self.restore_test))
        if self.offsite_restore_test is not None:
            target = self.offsite_restore_test.repository
            found.append((f"{RESTORE_TEST}:{target}", target, self.offsite_restore_test))
        return found

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        Schedule.parse(value)
        return value

    def parsed_schedule(self) -> Schedule:
        return Schedule.parse(self.schedule, self.jitter)

    def copy_retention(self, target: str) -> Retention:
        """The retention a copy target applies: its own, else the plan's (a copy never
        keeps less than the plan promises, nor grows without bound)."""
        for copy in self.copies:
            if copy.to == target and copy.retention is not None:
                return copy.retention
        return self.retention


class Webhook(Model):
    url: str
    """http:// or https://; a robot key in it is never printed."""
    format: Literal["generic", "wecom", "dingtalk"] = "generic"
    """generic: a JSON document; wecom / dingtalk: the robot message formats of WeCom
    (企业微信) and DingTalk (钉钉) group robots."""
    secret_file: str | None = None
    """DingTalk: the robot's signing secret (加签), first line of this file."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook URL starts with https:// (or http://)")
        return value


SMTPS_PORT = 465


class EmailConf(Model):
    """Alert mail. A login never travels in clear by default: with `username` the
    connection is STARTTLS unless `smtps` (implicit TLS) is chosen, and turning both off
    is refused unless `allow_plaintext_login` says so. The server's certificate is
    verified against the system's CAs, or `ca_file` (a hospital's own CA)."""

    smtp: str
    """HOST:PORT of the mail server."""
    sender: str
    to: list[str] = Field(min_length=1)
    starttls: bool | None = None
    """Upgrade the connection with STARTTLS; unset: yes when logging in (and not smtps)."""
    smtps: bool | None = None
    """TLS from the first byte (SMTPS); unset: yes when the port is 465."""
    ca_file: str | None = None
    """PEM file of the CA(s) that sign the server's certificate, instead of the system's."""
    allow_plaintext_login: bool = False
    """Accept sending the username and password without TLS (a relay on a trusted
    segment that offers no TLS). Off: such a configuration is refused."""
    username: str | None = None
    password_file: str | None = None

    @field_validator("smtp")
    @classmethod
    def _smtp(cls, value: str) -> str:
        host, colon, port = value.rpartition(":")
        if colon and (not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"invalid mail server {value!r}: use HOST:PORT, e.g. "
                             "smtp.hospital.example:587")
        return value

    @property
    def host(self) -> str:
        host, colon, _port = self.smtp.rpartition(":")
        return host if colon else self.smtp

    @property
    def port(self) -> int:
        _host, colon, port = self.smtp.rpartition(":")
        return int(port) if colon else (SMTPS_PORT if self.smtps else 25)

    @property
    def implicit_tls(self) -> bool:
        """SMTPS: as set, else by the port."""
        if self.smtps is not None:
            return self.smtps
        _host, colon, port = self.smtp.rpartition(":")
        return bool(colon) and port == str(SMTPS_PORT)

    @property
    def use_starttls(self) -> bool:
        """STARTTLS: as set, else whenever a login would otherwise go in clear."""
        if self.implicit_tls:
            return False
        if self.starttls is not None:
            return self.starttls
        return self.username is not None

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for each setting that cannot work or leaks the password."""
        found: list[tuple[str, str]] = []
        if self.smtps and self.starttls:
            found.append(("starttls", "choose one of smtps (TLS from the start, port 465) "
                          "and starttls (port 587 or 25), not both"))
        tls = self.implicit_tls or self.use_starttls
        if self.username is not None and not tls and not self.allow_plaintext_login:
            found.append(("starttls", "the SMTP login would send the password in clear text: "
                          "remove `starttls = false` (STARTTLS is the default with a login) "
                          "or set smtps = true (port 465); only on a trusted network, set "
                          "allow_plaintext_login = true"))
        if self.ca_file is not None and not tls:
            found.append(("ca_file", "a CA file needs TLS: set starttls = true or "
                          "smtps = true"))
        if self.password_file is not None and self.username is None:
            found.append(("password_file", "a password needs a username"))
        return found


class AlertsConf(Model):
    webhooks: list[Webhook] = []
    email: EmailConf | None = None
    language: Literal["zh", "en"] = "zh"
    """Alert texts: Chinese by default, English on request."""
    tries: int = Field(default=4, ge=1, le=10)
    """Attempts per channel before a notice is recorded undelivered."""
    backoff: Duration = timedelta(seconds=2)
    """Pause after the first failed attempt, doubled after each next one."""
    redeliver: Duration = timedelta(minutes=5)
    """How often the daemon tries an undelivered notice again (until it gets through)."""

    @field_validator("backoff", "redeliver")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be at least 1s")
        return value


TIERS = ("二级", "三乙", "三甲")
CHECKS = ("local_rpo", "local_rto", "offsite_rpo", "offsite_rto", "dr_rpo", "dr_rto",
          "local_backup", "offsite_backup", "offsite_realtime", "hot_redundancy",
          "app_switch", "switch_time", "offsite_frequency", "device_configs",
          "record_retention", "residency", "db_audit")
"""What a requirement can ask (policy/compliance.py evaluates each)."""
LIMITED_CHECKS = {"local_rpo", "local_rto", "offsite_rpo", "offsite_rto", "dr_rpo", "dr_rto",
                  "switch_time", "offsite_frequency"}
"""Checks judged against a time limit, which a custom requirement must give."""


class RequirementConf(Model):
    id: str
    title: str
    check: Literal[CHECKS]  # type: ignore[valid-type]
    must: bool = True
    """"must reach" (a miss fails and sets exit 17) or "recommended" (a miss warns)."""
    limit: Duration | None = None
    systems: list[str] = []
    """Only these systems (default: every system)."""


class ProfileConf(Model):
    """A custom compliance profile: a built-in hospital tier's requirements (or none),
    with requirements of the same id replaced and others added — a province's or a
    hospital group's stricter rules."""

    base: Literal["二级", "三乙", "三甲"] | None = None
    requirements: list[RequirementConf] = []


class HospitalConf(Model):
    name: str = ""
    """Shown on reports (XX县人民医院)."""
    tier: str = "三甲"
    """二级, 三乙, 三甲 or the name of a custom profile (`profiles.NAME`)."""
    level: int = Field(default=3, ge=1, le=4)
    """等保 2.0 level of its main systems."""
    sichuan: bool = False
    """Also judge the Sichuan smart-hospital evaluation items."""
    language: Literal["zh", "en"] | None = None
    """Language of `report` and `compliance` when --lang is not given (unset: reports
    Chinese; `compliance` from the locale, else English)."""


class AuditConf(Model):
    """The daemon's anchoring of the audit trail (docs/audit.md)."""

    anchor_repository: str | None = None
    """A repository of `repositories` (best a WORM one) the daemon stores the audit
    trail's head in every `anchor_every`; unset: the daemon does not anchor."""
    anchor_every: Duration = timedelta(hours=1)
    """What a holder of the catalog and its audit key could rewrite unnoticed is at most
    this much of the trail."""

    @field_validator("anchor_every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class CatalogConf(Model):
    url: str = DEFAULT_CATALOG
    """SQLite file (the default) or a PostgreSQL DSN for a central deployment."""


class MedarkConfig(Model):
    timezone: str = "Asia/Shanghai"
    hospital: HospitalConf = HospitalConf()
    catalog: CatalogConf = CatalogConf()
    alerts: AlertsConf = AlertsConf()
    audit: AuditConf = AuditConf()
    sites: dict[str, Site] = Field(min_length=1)
    repositories: dict[str, RepositoryConf] = Field(min_length=1)
    systems: dict[str, System] = Field(min_length=1)
    plans: dict[str, Plan] = Field(min_length=1)
    profiles: dict[str, ProfileConf] = {}
    dr: dict[str, DrConf] = {}
    """Application-level DR per protected system (config/dr.py, docs/dr.md)."""
    agent: AgentConf = AgentConf()
    """What `medark agent` lets the server ask beyond plans (config/agent_conf.py)."""
    netconfig: NetconfigConf | None = None
    """Network devices whose configuration is kept (config/netconfig.py)."""

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def problems(self) -> list[tuple[Path, str]]:
        """Cross-references and record minimums: (key path, message) for each problem."""
        found: list[tuple[Path, str]] = []
        for name, repo in self.repositories.items():
            if repo.site not in self.sites:
                found.append((("repositories", name, "site"), _unknown("site", repo.site,
                                                                       self.sites)))
        for name, system in self.systems.items():
            for i, source in enumerate(system.sources):
                found += [(("systems", name, "sources", i, key), message)
                          for key, message in _source_problems(source)]
            found += [(("systems", name, "sources", *at), message)
                      for at, message in group_problems(system.sources)]
        for name, plan in self.plans.items():
            found += self._plan_problems(name, plan)
        for name, custom in self.profiles.items():
            found += self._profile_problems(name, custom)
        if self.alerts.email is not None:
            found += [(("alerts", "email", key), message)
                      for key, message in self.alerts.email.problems()]
        if self.hospital.tier not in TIERS and self.hospital.tier not in self.profiles:
            found.append((("hospital", "tier"), f"unknown tier {self.hospital.tier!r}: use "
                          f"{', '.join(TIERS)} or a profile of `profiles`"))
        anchor = self.audit.anchor_repository
        if anchor is not None and anchor not in self.repositories:
            found.append((("audit", "anchor_repository"),
                          _unknown("repository", anchor, self.repositories)))
        found += dr_problems(self.dr, self.systems, self.sites, self.repositories)
        if self.netconfig is not None:
            found += list(self.netconfig.problems(self.repositories))
        return found

    def _profile_problems(self, name: str, custom: ProfileConf) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        if name in TIERS:
            found.append((("profiles", name), f"{name} is a built-in tier: give the custom "
                          "profile another name (and `base = \"" + name + "\"`)"))
        for i, req in enumerate(custom.requirements):
            at: Path = ("profiles", name, "requirements", i)
            if req.check in LIMITED_CHECKS and req.limit is None:
                found.append(((*at, "check"), f"check {req.check!r} needs a limit "
                              "(e.g. limit = \"30min\")"))
            found += [((*at, "systems"), _unknown("system", system, self.systems))
                      for system in req.systems if system not in self.systems]
        return found

    def _plan_problems(self, name: str, plan: Plan) -> list[tuple[Path, str]]:
        at: Path = ("plans", name)
        found: list[tuple[Path, str]] = []
        if plan.system not in self.systems:
            found.append(((*at, "system"), _unknown("system", plan.system, self.systems)))
        if plan.repository not in self.repositories:
            found.append(((*at, "repository"),
                          _unknown("repository", plan.repository, self.repositories)))
        for i, copy in enumerate(plan.copies):
            if copy.to not in self.repositories:
                found.append(((*at, "copies", i, "to"),
                              _unknown("repository", copy.to, self.repositories)))
            elif copy.to == plan.repository:
                found.append(((*at, "copies", i, "to"),
                              "a copy must go to another repository than the plan's own"))
        offsite = plan.offsite_restore_test
        if offsite is not None and offsite.repository not in {c.to for c in plan.copies}:
            found.append(((*at, "offsite_restore_test", "repository"),
                          f"{offsite.repository!r} is not a copy target of the plan (copies: "
                          f"{', '.join(c.to for c in plan.copies) or 'none'})"))
        system = self.systems.get(plan.system)
        if system is not None:
            found += _record_problems((*at, "retention"), plan.retention, plan.system, system)
            for i, copy in enumerate(plan.copies):
                if copy.retention is not None:
                    found += _record_problems((*at, "copies", i, "retention"), copy.retention,
                                              plan.system, system)
        return found


def _record_problems(at: Path, retention: Retention, name: str,
                     system: System) -> list[tuple[Path, str]]:
    """A retention (a plan's or a copy target's) that undercuts the medical-record minimum."""
    minimum = RECORD_MINIMUM.get(system.records)
    reach = retention.reach()
    if minimum is None or reach is None or reach >= minimum:
        return []
    years = minimum.days // 365
    return [(at, f"keeps points for {reach.days // 365} year(s) at most, but {name} holds "
                 f"{system.records} records, which must be kept {years} years: set "
                 f"yearly = {years} or more")]


def _unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    choices = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {name!r} (defined: {choices})"


def _source_problems(source: Source) -> list[tuple[str, str]]:
    needs = {"files": "paths", "postgres": "dsn", "mariadb": "dsn", "command": "command",
             "sqlite": "paths"}
    key = needs[source.type]
    found = [] if getattr(source, key) else [(key, f"a {source.type} source needs {key}")]
    if source.stream and source.type not in ("postgres", "mariadb"):
        found.append(("stream", "only postgres and mariadb sources stream their log"))
    if source.slot is not None and not (source.type == "postgres" and source.stream):
        found.append(("slot", "a slot belongs to a streaming postgres source"))
    if source.audit is not None:
        found += audit_problems(source.type, source.audit)
    return found
