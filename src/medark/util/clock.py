"""The only place that reads the time, so policies and tests can inject their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock for tests: returns a set time, moved by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self._mono = 0.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.at += timedelta(seconds=seconds)
        self._mono += seconds


SYSTEM = SystemClock()


def now() -> datetime:
    return SYSTEM.now()


def monotonic() -> float:
    return SYSTEM.monotonic()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def parse_time(text: object) -> datetime:
    """ISO-8601 timestamp; a naive one is taken as UTC. TypeError for what is not a
    string, ValueError for a time that is not one or that UTC cannot represent (year 1
    with a positive offset): values decoded from a document may be anything, and a time
    that parsed must not fail later in format_time."""
    if not isinstance(text, str):
        raise TypeError(f"a time is a string, not a {type(text).__name__}")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time {text!r} is out of range") from None
    return value


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
