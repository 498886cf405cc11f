"""The `[netconfig]` section: network devices whose configuration is kept (docs/netconfig.md).

Its own module so that plans.py only names it; the change window is parsed here, and
`in_window` decides with the time passed in (docs/architecture.md, convention 7).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from medark.config.durations import at_least_second, parse_config_duration
from medark.config.schedule import Schedule

MIN_KEEP = 3
"""Sichuan 1.4.1: at least the last 3 changes, whatever the configuration says."""
DEFAULT_KEEP = 10
DEFAULT_KNOWN_HOSTS = "/etc/medark/netconfig_known_hosts"
PROFILES = ("huawei", "h3c", "cisco_ios", "ruijie", "command")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?:(?P<day>[A-Za-z]{3})\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*"
                     r"(?P<end>\d{1,2}:\d{2})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '30s' or '2min'")
    return parse_config_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def parse_window(text: str) -> tuple[int | None, time, time]:
    """(weekday 0=Monday or None for every day, start, end) of "[DAY ]HH:MM-HH:MM"."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f"invalid change window {text!r}: use \"HH:MM-HH:MM\" or "
                         "\"Sat 22:00-06:00\"")
    day = match["day"]
    if day is not None and day.lower() not in DAYS:
        raise ValueError(f"unknown day {day!r} in change window: use Mon … Sun")
    try:
        start = time.fromisoformat(match["start"].zfill(5))
        end = time.fromisoformat(match["end"].zfill(5))
    except ValueError:
        raise ValueError(f"invalid time in change window {text!r}") from None
    return (DAYS.index(day.lower()) if day else None), start, end


def in_window(text: str, when: datetime) -> bool:
    """Whether local time `when` falls in the window (one passing midnight belongs to the
    day it starts on)."""
    day, start, end = parse_window(text)
    clock_time = when.time().replace(tzinfo=None)
    if start <= end:
        return (day is None or when.weekday() == day) and start <= clock_time < end
    if clock_time >= start:
        return day is None or when.weekday() == day
    if clock_time < end:
        return day is None or (when - timedelta(days=1)).weekday() == day
    return False


def _checked_window(value: str | None) -> str | None:
    if value is not None:
        parse_window(value)
    return value


Window = Annotated[str | None, AfterValidator(_checked_window)]
"""A change window "[DAY ]HH:MM-HH:MM", checked where it is read."""


class Device(_Model):
    address: str = ""
    port: int = Field(default=22, ge=1, le=65535)
    profile: Literal["huawei", "h3c", "cisco_ios", "ruijie", "command"]
    username: str | None = None
    password_file: str | None = None
    """First line: the password (or the key's passphrase). Mode 0600/0400, else refused."""
    key_file: str | None = None
    command: str | None = None
    """profile = "command": a local command whose standard output is the configuration."""
    keep: int | None = Field(default=None, ge=MIN_KEEP)
    host_key_checking: bool = True
    known_hosts: str | None = None
    """This device's own known_hosts file instead of the section's."""
    change_window: Window = None


class NetconfigConf(_Model):
    repository: str
    schedule: str = "0 */4 * * *"
    keep: int = Field(default=DEFAULT_KEEP, ge=MIN_KEEP)
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    timeout: Annotated[Duration, AfterValidator(at_least_second)] = timedelta(seconds=30)
    change_window: Window = None
    copies: list[str] = Field(default_factory=list)
    """Repositories of [repositories] the daemon copies the versions to after each fetch
    slot (`copy --tag netconfig`): an off-site copy of the configurations."""
    devices: dict[str, Device] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if Schedule.parse(value).continuous:
            raise ValueError("a fetch cannot be continuous: give a cron or interval")
        return value

    def keep_of(self, name: str) -> int:
        device = self.devices[name]
        return max(MIN_KEEP, device.keep if device.keep is not None else self.keep)

    def window_of(self, name: str) -> str | None:
        return self.devices[name].change_window or self.change_window

    def problems(self, repositories: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        found: list[tuple[tuple[str | int, ...], str]] = []
        if self.repository not in repositories:
            found.append((("netconfig", "repository"), f"unknown repository "
                          f"{self.repository!r} (defined: {', '.join(sorted(repositories))})"))
        for i, copy in enumerate(self.copies):
            if copy not in repositories:
                found.append((("netconfig", "copies", i), f"unknown repository {copy!r} "
                              f"(defined: {', '.join(sorted(repositories))})"))
            elif copy == self.repository:
                found.append((("netconfig", "copies", i), "a copy must go to another "
                              f"repository than the versions' own ({self.repository!r})"))
            elif copy in self.copies[:i]:
                found.append((("netconfig", "copies", i), f"{copy!r} is named twice"))
        for name, device in self.devices.items():
            at = ("netconfig", "devices", name)
            if not _NAME.match(name):
                found.append((at, "a device name is letters, digits, '.', '_' and '-'"))
            if device.profile == "command":
                if not device.command:
                    found.append(((*at, "command"), "profile \"command\" needs command"))
                continue
            if not device.address:
                found.append(((*at, "address"), f"a {device.profile} device needs address"))
            if not device.username:
                found.append(((*at, "username"), "an SSH device needs username"))
            if not device.password_file and not device.key_file:
                found.append(((*at, "password_file"),
                              "give password_file or key_file (credentials never sit in "
                              "the plan file)"))
            if device.command:
                found.append(((*at, "command"), "command belongs to profile \"command\""))
        return found
