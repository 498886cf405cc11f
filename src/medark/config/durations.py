"""Durations in the configuration file: '30s', '15min', '1h', '7d', '4w', '6mo', '15y'.

Unlike the CLI's restic-style `--keep-within 1m` (m = month), a configuration speaks of
RPOs in minutes and retention in years side by side, so every unit is spelled out and a
bare 'm' is refused as ambiguous. Compound values add up: '1h30min'.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {
    "s": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "mo": timedelta(days=30),
    "y": timedelta(days=365),
}
_PART = re.compile(r"(\d+)\s*([a-z]+)")


def parse_config_duration(text: str) -> timedelta:
    """ValueError (with the fix in its message) for anything but N<unit>[N<unit>...]."""
    compact = text.strip().lower()
    parts = _PART.findall(compact)
    if not parts or re.sub(r"\s+", "", compact) != "".join(n + u for n, u in parts):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 15min, 1h, 7d, 4w, 6mo, 15y")
    total = timedelta()
    for number, unit in parts:
        if unit == "m":
            raise ValueError(f"ambiguous duration {text!r}: write 'min' for minutes or 'mo' "
                             "for months")
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r} in {text!r}: use s, min, h, d, w, mo or y")
        try:
            total += int(number) * UNITS[unit]
        except OverflowError:  # past timedelta's 999 999 999 days
            raise ValueError(f"duration {text!r} is too long") from None
    return total


def format_config_duration(value: timedelta) -> str:
    """The shortest exact spelling in the largest fitting units ('1h30min', '15y')."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("y", "d", "h", "min", "s"):
        size = int(UNITS[unit].total_seconds())
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def at_least_second(value: timedelta) -> timedelta:
    """A pydantic after-validator for an interval or timeout: under 1s is a typo (or a
    busy loop), not a setting."""
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")
    return value
