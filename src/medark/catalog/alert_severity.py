"""How urgent each kind of alert is, for the people on call: one table, so the daemon's
catalog, the management server's API and its live feed, and the console all rank an
alert the same way.

Data at risk now is critical (a possible ransomware backup, a missed RPO, a standby that
cannot take over); a protection that stopped working is major; the rest is minor. A kind
not listed here is major: better seen than missed.
"""

from __future__ import annotations

from typing import Final, Literal

Severity = Literal["critical", "major", "minor"]
SEVERITIES: Final[tuple[Severity, ...]] = ("critical", "major", "minor")

SEVERITY: Final[dict[str, Severity]] = {
    "suspicious": "critical",
    "rpo_breach": "critical",
    "dr_standby": "critical",
    "job_failed": "major",
    "restore_test_failed": "major",
    "dr_drill_failed": "major",
    "dr_lag": "major",
    "dr_sync": "major",
    "agent_offline": "major",
    "audit_anchor_failed": "minor",
}


def severity_of(kind: str) -> Severity:
    return SEVERITY.get(kind, "major")
