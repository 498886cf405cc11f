"""Human-readable sizes and durations, parsed and printed the same way everywhere."""

from __future__ import annotations

import re
from datetime import timedelta

from medark.errors import UsageError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def format_bytes(n: float, decimals: int = 2) -> str:
    """Binary units (KiB, MiB, GiB), as every size Medark prints."""
    divisor, unit = binary_unit(n)
    if unit == "B":
        return f"{float(n):.0f} B"
    return f"{n / divisor:.{decimals}f} {unit}"


def binary_unit(n: float) -> tuple[int, str]:
    """The largest binary unit below `n` (at least bytes), as (its size, its name)."""
    for power, unit in enumerate(_UNITS):
        if abs(n) < 1024 ** (power + 1) or unit == _UNITS[-1]:
            return 1024 ** power, unit
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """420ms, 4.2s, 3m05s, 2h07m: every duration and RTO the CLI prints. Under a second
    it is milliseconds, since a restore test of a small system takes 0.04 s and "0.0s"
    reads as "not measured"."""
    seconds = max(0.0, seconds)
    if seconds < 0.0005:
        return "<1ms"
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


_DURATION = re.compile(r"(\d+)([yYmwdhM])")
_DURATION_UNITS = {
    "y": timedelta(days=365),
    "Y": timedelta(days=365),
    "m": timedelta(days=30),
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "M": timedelta(minutes=1),
}


def parse_duration(text: str) -> timedelta:
    """restic-style durations: '2y5m7d3h' (m = month, M = minute)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"invalid duration {text!r}: use e.g. 7d, 4w, 1y6m, 12h")
    total = timedelta()
    for number, unit in parts:
        total += int(number) * _DURATION_UNITS[unit]
    return total
