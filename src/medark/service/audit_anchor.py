"""Anchoring the audit trail's head in a repository, and reading the anchors back.

An anchor is a small sealed object `audit/<sha256>` = {"type", "chain", "seq", "hash",
"hash_alg", "record_at", "anchored_at", "hostname", "catalog"}, written once like a
snapshot (content-named, encrypted and authenticated with the repository's key). In a
WORM repository (S3 Object Lock, an append-only rest: server) nobody holding only the
catalog, not even its database administrator with the audit key, can remove or change
it: a history rewritten before the newest anchor no longer has the anchored hash at the
anchored number, and `medark audit verify --repo` names it.

Anchor at intervals (`medark daemon` with `[audit] anchor_repository`:
scheduler/audit_anchoring.py; or a systemd timer or cron: docs/audit.md); each anchor is
itself recorded in the trail as `audit.anchor`."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medark.catalog.audit_trail import AuditEntry, append, snapshot
from medark.catalog.audit_verify import Anchor
from medark.errors import MedarkError, UsageError
from medark.util import clock

if TYPE_CHECKING:
    from medark.catalog.store import Catalog
    from medark.repo.repository import Repository

ANCHORS_PREFIX = "audit/"
ANCHOR_TYPE = "medark-audit-anchor"


@dataclass(frozen=True)
class Anchored:
    anchor: Anchor
    name: str
    record: int
    """The `audit.anchor` record that notes it."""


@dataclass(frozen=True)
class Unreadable:
    name: str
    reason: str


def anchor(catalog: Catalog, repo: Repository, actor: str, source: str) -> Anchored:
    """Store the chain head (the newest record's number and hash) in the repository."""
    head, rows, _after = snapshot(catalog)
    if head.seq == 0:
        raise UsageError("the audit trail is empty: nothing to anchor yet")
    last = next((r for r in reversed(rows) if r.seq == head.seq), None)
    now = clock.now()
    doc: dict[str, Any] = {
        "type": ANCHOR_TYPE, "v": 1, "chain": head.chain, "seq": head.seq,
        "hash": head.hash, "hash_alg": last.hash_alg if last else None,
        "record_at": clock.format_time(last.at) if last else None,
        "anchored_at": clock.format_time(now), "hostname": socket.gethostname(),
        "catalog": catalog.public_url}
    name = repo.save_unpacked(ANCHORS_PREFIX, json.dumps(doc, sort_keys=True).encode())
    record = append(catalog, AuditEntry(
        actor, source, "audit.anchor", f"repository:{repo.backend.properties().location}",
        detail={"seq": head.seq, "hash": head.hash, "object": name}))
    return Anchored(Anchor(head.chain, head.seq, head.hash, now, name), name, record)


def anchors(repo: Repository) -> tuple[list[Anchor], list[Unreadable]]:
    """Every anchor in the repository, and the objects under audit/ that are none."""
    found: list[Anchor] = []
    bad: list[Unreadable] = []
    for name in sorted(repo.list_names(ANCHORS_PREFIX)):
        try:
            doc = json.loads(repo.load_unpacked(name))
            if doc.get("type") != ANCHOR_TYPE:
                raise ValueError("not an audit anchor")
            found.append(Anchor(str(doc["chain"]), int(doc["seq"]), str(doc["hash"]),
                                clock.parse_time(doc["anchored_at"]), name))
        except (MedarkError, ValueError, KeyError, TypeError, AttributeError) as exc:
            bad.append(Unreadable(name, str(exc).splitlines()[0] if str(exc) else
                                  type(exc).__name__))
    return found, bad
