"""Vendor profiles: how to fetch a device's configuration and which lines to ignore.

A profile names the netmiko device type (which knows the vendor's login banners, prompt
and paging), the paging-off and configuration commands, and the volatile lines: lines
that change while nobody changes the device (timestamps, byte counts, NTP drift). Those
are dropped only to decide whether the configuration changed (`normalise`); the stored
version is the text as the device printed it. Pure: no I/O (docs/architecture.md,
convention 8 in spirit), so it is tested with sample outputs alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_PAGING_LEFTOVERS = re.compile(
    r"\s*-{2,}\s*More\s*-{2,}\s*|\x1b\[[0-9;]*[A-Za-z]|\x1b\[\d*D|[\x08]+")
"""`---- More ----` (VRP, Comware), ` --More-- ` (IOS, RGOS), the ANSI cursor moves and
backspaces a device prints to erase them."""

_COMMON_VOLATILE = (
    r"^\s*ntp clock-period \d+\s*$",
    r"^.*\buptime is\b.*$",
)


@dataclass(frozen=True)
class Profile:
    name: str
    device_type: str
    """netmiko's device type (it handles the prompt and the login)."""
    paging_off: str
    show_config: str
    prompt: str
    """The CLI prompt as a regular expression (also cut from the output's edges)."""
    volatile: tuple[str, ...]

    def volatile_pattern(self) -> re.Pattern[str]:
        return re.compile("|".join((*self.volatile, *_COMMON_VOLATILE)))


HUAWEI = Profile(
    "huawei", "huawei", "screen-length 0 temporary", "display current-configuration",
    r"^[<\[][~*]?[\w.\-/]+(?:-[\w.\-/]+)*[>\]]\s*$",
    (r"^\s*!\s*Last configuration was (?:updated|saved) at .*$",
     r"^\s*!\s*Time:.*$",
     r"^\s*!\s*Current time.*$"),
)
H3C = Profile(
    "h3c", "hp_comware", "screen-length disable", "display current-configuration",
    r"^[<\[][\w.\-/]+(?:-[\w.\-/]+)*[>\]]\s*$",
    # Comware prints its comments after "#" (its separator), VRP after "!"
    (r"^\s*[!#]?\s*Last configuration (?:was )?(?:updated|saved) at .*$",
     r"^\s*Current configuration time.*$"),
)
CISCO_IOS = Profile(
    "cisco_ios", "cisco_ios", "terminal length 0", "show running-config",
    r"^[\w.\-/]+(?:\([\w\-]+\))?[#>]\s*$",
    (r"^\s*!\s*Time:.*$",
     r"^\s*!\s*Last configuration change at .*$",
     r"^\s*!\s*NVRAM config last updated at .*$",
     r"^\s*!\s*No configuration change since last restart\s*$",
     r"^\s*!\s*Running configuration last done at:.*$",
     r"^\s*Current configuration\s*:\s*\d+ bytes\s*$",
     r"^\s*Building configuration\.\.\.\s*$"),
)
RUIJIE = Profile(
    "ruijie", "ruijie_os", "terminal length 0", "show running-config",
    r"^[\w.\-/]+(?:\([\w\-]+\))?[#>]\s*$",
    (r"^\s*Current configuration\s*:\s*\d+ bytes\s*$",
     r"^\s*Building configuration\.\.\.\s*$",
     r"^\s*!\s*Last configuration change at .*$",
     r"^\s*!\s*Time:.*$"),
)
COMMAND = Profile("command", "", "", "", r"(?!)", (r"^\s*!\s*Time:.*$",))
"""Any local command whose standard output is the configuration (a controller's export,
a vendor tool): only the common volatile lines are ignored."""

PROFILES: dict[str, Profile] = {p.name: p for p in (HUAWEI, H3C, CISCO_IOS, RUIJIE, COMMAND)}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})"
                         ) from None


def clean(raw: str, prof: Profile) -> str:
    """The configuration as stored: line endings unified, paging leftovers and the echoed
    command and prompt at the edges removed; every other line as the device printed it."""
    text = _PAGING_LEFTOVERS.sub("\n", raw.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    prompt = re.compile(prof.prompt)
    while lines and (not lines[0].strip() or prompt.match(lines[0])
                     or _is_echo(lines[0], prof)):
        lines.pop(0)
    while lines and (not lines[-1].strip() or prompt.match(lines[-1])):
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def _is_echo(line: str, prof: Profile) -> bool:
    stripped = line.strip()
    return bool(prof.show_config) and (stripped.endswith(prof.show_config)
                                       or stripped.endswith(prof.paging_off))


def normalise(text: str, prof: Profile) -> str:
    """What decides whether the configuration changed: `clean(text)` without the volatile
    lines, and without the blank lines their removal leaves."""
    volatile = prof.volatile_pattern()
    kept = [line for line in clean(text, prof).split("\n")
            if line.strip() and not volatile.match(line)]
    return "\n".join(kept) + "\n" if kept else ""


def fingerprint(text: str, prof: Profile) -> str:
    """SHA-256 (hex) of the normalised configuration: equal means "no real change"."""
    return hashlib.sha256(normalise(text, prof).encode("utf-8")).hexdigest()
