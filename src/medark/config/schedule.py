"""When a job runs: a cron expression, a fixed interval, or continuously.

Spellings in the configuration file:
  "*/15 * * * *"   five-field cron, in the configuration's time zone (croniter)
  "every 15min"    a fixed interval, counted from the previous start
  "continuous"     a supervised job that runs all the time (WAL/binlog streaming,
                   `copy --follow`), restarted with backoff when it stops
Jitter (a duration) delays each start by a fixed share of it, the same for a plan every
time (derived from the plan's name), so forty hospitals' jobs with the same schedule
spread out instead of striking the regional center together, and a restart does not move
them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from medark.config.durations import format_config_duration, parse_config_duration

CONTINUOUS = "continuous"
_EVERY = "every "
_WALK = 2000
"""Runs walked one by one before longest_gap probes hourly instead."""


ALIASES = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0",
           "monthly": "0 0 1 * *", "yearly": "0 0 1 1 *"}
"""cron's @-names (with or without the @): at midnight of the period's first day, moved by
the plan's jitter like any cron schedule."""


def _between(earlier: datetime, later: datetime) -> timedelta:
    """Elapsed time, across a daylight-saving change too (aware datetimes of one zone
    subtract as wall clocks)."""
    return later.astimezone(UTC) - earlier.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str | None = None
    interval: timedelta | None = None
    jitter: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: str, jitter: timedelta = timedelta(0)) -> Schedule:
        """ValueError naming the problem for anything that is not one of the spellings."""
        spelled = " ".join(text.split())
        if spelled == CONTINUOUS:
            return cls(spelled, jitter=jitter)
        if spelled.startswith(_EVERY):
            interval = parse_config_duration(spelled[len(_EVERY):])
            if interval < timedelta(seconds=1):
                raise ValueError(f"interval {text!r} is shorter than one second")
            return cls(spelled, interval=interval, jitter=jitter)
        alias = ALIASES.get(spelled.lower().lstrip("@"))
        if alias is not None:
            return cls(spelled, cron=alias, jitter=jitter)
        if len(spelled.split(" ")) != 5 or not croniter.is_valid(spelled):
            raise ValueError(f"invalid schedule {text!r}: use a five-field cron expression "
                             "('*/15 * * * *'), 'every 15min', 'daily'/'weekly'/'monthly' "
                             "or 'continuous'")
        return cls(spelled, cron=spelled, jitter=jitter)

    @property
    def continuous(self) -> bool:
        return self.cron is None and self.interval is None

    def typical_gap(self, tz: ZoneInfo, around: datetime) -> timedelta | None:
        """The longest gap between two runs over the next week: what this schedule alone
        lets the RPO grow to (None for continuous)."""
        return self.longest_gap(tz, around, timedelta(days=7))

    def longest_gap(self, tz: ZoneInfo, around: datetime,
                    window: timedelta = timedelta(days=14)) -> timedelta | None:
        """The longest gap between two consecutive runs from `around` over `window` (None
        for continuous). The runs are walked while they are few; beyond that an hourly
        probe finds the runs either side of it, so any gap over an hour is measured
        exactly even for a dense cron ("* * * * 1-5" leaves its weekend)."""
        if self.interval is not None:
            return self.interval
        if self.cron is None:
            return None
        start = around.astimezone(tz)
        end = start + window
        runs = croniter(self.cron, start)
        previous: datetime = runs.get_next(datetime)
        longest = timedelta(0)
        for _ in range(_WALK):
            current: datetime = runs.get_next(datetime)
            longest = max(longest, _between(previous, current))
            previous = current
            if current > end:
                return longest
        probe = start.replace(second=30, microsecond=0)  # never on a cron minute
        while probe < end:
            before: datetime = croniter(self.cron, probe).get_prev(datetime)
            after: datetime = croniter(self.cron, probe).get_next(datetime)
            longest = max(longest, _between(before, after))
            probe += timedelta(hours=1)
        return longest

    def next_after(self, after: datetime, tz: ZoneInfo, seed: str,
                   last_start: datetime | None = None) -> datetime | None:
        """The next start after `after` (aware datetimes); None for continuous. Intervals
        count from `last_start` when there was one (the jitter placed the first start)."""
        if self.interval is not None:
            if last_start is not None:
                return max(last_start + self.interval, after)
            return after + self.offset(seed)
        if self.cron is not None:
            start: datetime = croniter(self.cron, after.astimezone(tz)).get_next(datetime)
            return start + self.offset(seed)
        return None

    def offset(self, seed: str) -> timedelta:
        """This plan's fixed share of the jitter."""
        if not self.jitter:
            return timedelta(0)
        share = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") / 2**32
        return timedelta(seconds=int(self.jitter.total_seconds() * share))

    def describe(self) -> str:
        base = self.text
        if self.jitter:
            base += f" (jitter {format_config_duration(self.jitter)})"
        return base
