"""A database source's `audit` table: where its server writes the audit log, in which
format, and what the monthly analysis counts as unusual (docs/dbaudit.md)."""

from __future__ import annotations

import ipaddress
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from medark.config.durations import at_least_second, parse_config_duration

FORMATS_BY_TYPE = {"postgres": ("csvlog", "jsonlog"), "mariadb": ("server_audit",)}


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '10s' or '1min'")
    return parse_config_duration(value)


def parse_clock(text: str) -> time:
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS)")
    numbers = [int(p) for p in parts] + [0]
    try:
        return time(numbers[0], numbers[1], numbers[2])
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS)") from None


def parse_hours(text: str) -> tuple[time, time]:
    """'08:00-18:00' as (start, end); a window past midnight ('22:00-06:00') is allowed."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"working_hours {text!r}: give START-END, e.g. '08:00-18:00'")
    first, last = parse_clock(start), parse_clock(end)
    if first == last:
        raise ValueError(f"working_hours {text!r}: the window is empty")
    return first, last


class DbAuditConf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    log: str = Field(min_length=1)
    """The log directory (every file of the format in it) or one file."""
    format: Literal["csvlog", "jsonlog", "server_audit"]
    allow: list[str] = []
    """Networks clients may connect from (CIDR, or `local`); empty: any."""
    working_hours: str = "08:00-18:00"
    bulk_rows: int = Field(default=1000, ge=1)
    clinical: list[str] = []
    """fnmatch patterns of the objects whose DDL the report lists; empty: every one."""
    every: Annotated[timedelta, BeforeValidator(_duration),
                     AfterValidator(at_least_second)] = timedelta(seconds=10)
    mask: bool = True
    timezone: str | None = None
    """The zone of the log's times where they carry none (server_audit, a PostgreSQL
    log_timezone abbreviation); default the configuration's `timezone`."""

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "local":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not a network (e.g. 10.0.0.0/8) or "
                                     "'local'") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") \
                    from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    @property
    def hours(self) -> tuple[time, time]:
        return parse_hours(self.working_hours)

    def allows(self, client: str) -> bool:
        """Whether a client address is inside `allow` (an empty list allows any)."""
        if not self.allow:
            return True
        if client == "local":
            return "local" in self.allow
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False  # a host name: not provably inside
        return any(item != "local" and address in ipaddress.ip_network(item, strict=False)
                   for item in self.allow)


def audit_problems(source_type: str, conf: DbAuditConf) -> list[tuple[str, str]]:
    """(key, message) for an audit table that does not fit its source."""
    allowed = FORMATS_BY_TYPE.get(source_type)
    if allowed is None:
        return [("audit", "only postgres and mariadb sources have a database audit log")]
    if conf.format not in allowed:
        return [("audit", f"format {conf.format!r} is not a {source_type} log (use "
                          f"{' or '.join(allowed)})")]
    return []
