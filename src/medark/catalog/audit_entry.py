"""What an audited action hands the audit trail (catalog/audit_trail.py appends it): its
fields, their limits, and the cleaning of its detail, so no record ever holds a secret."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

RESULTS = ("ok", "denied", "failed")
SECRET_NAMES = frozenset({"password", "passwd", "new_password", "secret", "token",
                          "api_token", "totp", "otp", "code", "key", "private_key",
                          "cookie", "session"})
"""Keys of `detail` whose values are replaced by "***": a record never holds a secret."""
LIMITS = {"actor": 200, "source": 255, "action": 100, "target": 500, "institution": 200}


@dataclass(frozen=True)
class AuditEntry:
    """What an audited action says about itself; `append` adds the number, time, hashes
    and signature."""

    actor: str
    """A user name, "cli:<os user>", "agent:<id>" or "daemon"."""
    source: str
    """The client's address, or "cli" / "daemon"."""
    action: str
    """"login", "login_failed", "user.create", "restore", "dr.switchover", …"""
    target: str | None = None
    """"user:alice", "system:his", "snapshot:ab12cd34"."""
    result: str = "ok"
    """ok, denied or failed."""
    institution: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping; never a secret (see SECRET_NAMES)."""


_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=4096)  # a collector writes the same keys millions of times
def _secret_key(key: str) -> bool:
    return key.lower() in SECRET_NAMES


def _clean(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): ("***" if _secret_key(str(k))
                         else v if type(v) in _SCALARS else _clean(v))
                for k, v in detail.items()}
    if isinstance(detail, list | tuple):
        return [_clean(v) for v in detail]
    return detail


def cleaned_detail(entry: AuditEntry) -> Any:
    """The entry's detail with secrets masked, once its fields are checked (ValueError
    for a bad result, a field too long or holding NUL, or a missing actor, source or
    action)."""
    if entry.result not in RESULTS:
        raise ValueError(f"audit result {entry.result!r}: use one of {', '.join(RESULTS)}")
    for name, limit in LIMITS.items():
        value = getattr(entry, name)
        if value is not None and len(value) > limit:
            raise ValueError(f"audit {name} is longer than {limit} characters")
        if value is not None and "\x00" in value:  # the database refuses it: refused here,
            raise ValueError(f"audit {name} holds a NUL character")  # not in a batch
    if not entry.actor or not entry.source or not entry.action:
        raise ValueError("an audit record needs an actor, a source and an action")
    return _clean(entry.detail)
