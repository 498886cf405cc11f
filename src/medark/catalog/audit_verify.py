"""Checking the audit trail: every record against its own hash, its signature, the
record before it, the chain head, and the anchors kept in a repository; each problem
named by sequence number and kind.

Kinds: `edited` (content no longer matches the hash, or a hash recomputed without the
key), `deleted` (numbers missing, or missing at the end), `inserted` (a record the
server did not write), `reordered` (a genuine record at another number), `replaced` (a
record re-signed with the key but not the one its successor was chained to),
`unknown_key` (signed by a key not given), `anchor` (differs from what an anchor in
the repository saw: history rewritten by someone holding the key, or cut short).

Telling a move from an edit: a record's hash covers its number, so a genuine record at
the wrong place fails its hash but keeps a valid signature; it is recomputed at the
number its chain neighbours imply (one after its predecessor, one before its
successor), and if that matches it was moved."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medark.catalog.audit_trail import (
    GENESIS,
    AuditRecord,
    Head,
    key_id,
    mac,
    record_hash,
)
from medark.util import clock

KINDS = ("edited", "deleted", "inserted", "reordered", "replaced", "unknown_key", "anchor")


@dataclass(frozen=True)
class Finding:
    seq: int
    kind: str
    message: str

    def line(self) -> str:
        return f"record {self.seq}: {self.kind}: {self.message}"

    def public(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Anchor:
    """What `audit anchor` stored in a repository: the chain head at that time."""

    chain: str
    seq: int
    hash: str
    anchored_at: datetime
    name: str = ""

    def when(self) -> str:
        return clock.format_time(self.anchored_at)


@dataclass
class Report:
    records: int
    head: int
    chain: str
    findings: list[Finding] = field(default_factory=list)
    anchors: int = 0
    """Anchors of this chain checked."""
    anchored_seq: int | None = None
    """The newest anchored sequence number."""

    @property
    def intact(self) -> bool:
        return not self.findings

    def public(self) -> dict[str, Any]:
        return {"records": self.records, "head": self.head, "chain": self.chain,
                "intact": self.intact, "anchors": self.anchors,
                "anchored_seq": self.anchored_seq,
                "problems": [f.public() for f in self.findings]}


def verify(before: Head, rows: list[AuditRecord], after: Head, keys: Iterable[bytes],
           anchors: Iterable[Anchor] | None = None) -> Report:
    """`before`, `rows`, `after`: as audit_trail.snapshot reads them."""
    by_id = {key_id(k): k for k in keys}
    report = Report(len(rows), after.seq, after.chain)
    found: dict[int, Finding] = {}

    def note(seq: int, kind: str, message: str) -> None:
        if seq not in found:
            found[seq] = Finding(seq, kind, message)

    def signed(r: AuditRecord) -> bool:
        key = by_id.get(r.key_id)
        return key is not None and hmac.compare_digest(
            mac(r.hash_alg, key, r.hash.encode("ascii")), r.signature)

    def hash_of(r: AuditRecord, seq: int | None = None) -> str | None:
        try:
            return record_hash(r, seq)
        except Exception:  # an unknown hash name or a detail JSON cannot hold: edited
            return None

    at = {r.seq: r for r in rows}
    sig = {r.seq: signed(r) for r in rows}
    whole = {r.seq: hash_of(r) == r.hash for r in rows}
    genuine = {r.hash: r for r in rows if sig[r.seq]}
    genuine_next = {r.prev_hash: r for r in rows if sig[r.seq]}

    def moved_from(r: AuditRecord) -> int | None:
        candidates = []
        if r.prev_hash in genuine:
            candidates.append(genuine[r.prev_hash].seq + 1)
        if r.prev_hash == GENESIS:
            candidates.append(1)
        if r.hash in genuine_next:
            candidates.append(genuine_next[r.hash].seq - 1)
        for seq in candidates:
            if seq != r.seq and seq > 0 and hash_of(r, seq) == r.hash:
                return seq
        return None

    for r in rows:
        if r.seq > after.seq:
            note(r.seq, "inserted", f"numbered beyond the chain head (record {after.seq})"
                 + ("" if sig[r.seq] else ", and not signed by the audit key"))
            continue
        if r.key_id not in by_id:
            note(r.seq, "unknown_key", f"signed by key {r.key_id}, which is not among the "
                 "keys given (--key-file)")
            continue
        if sig[r.seq] and whole[r.seq]:
            continue
        if sig[r.seq]:
            origin = moved_from(r)
            if origin is not None:
                note(r.seq, "reordered", f"holds record {origin}, moved from its place")
            else:
                note(r.seq, "edited", "its content no longer matches its hash")
            continue
        if not whole[r.seq]:
            note(r.seq, "edited", "its content no longer matches its hash, and its "
                 "signature is not the audit key's")
            continue
        # a consistent hash without the key's signature: written by someone else
        following = at.get(r.seq + 1)
        if following is None and r.seq > before.seq:
            note(r.seq, "inserted", f"after record {r.seq - 1}; not signed by the audit key")
        elif following is None and r.hash != before.hash:
            note(r.seq, "edited", "its hash was recomputed without the audit key (the "
                 "chain head holds another hash for it)")
        elif following is not None and moved_from(following) == r.seq:
            note(r.seq, "inserted", f"between records {r.seq - 1} and {r.seq + 1} "
                 "(later records renumbered); not signed by the audit key")
        elif following is None:
            note(r.seq, "inserted", "not signed by the audit key")
        else:
            note(r.seq, "edited", "its hash was recomputed without the audit key")

    # numbers missing: deleted
    expected = 1
    for r in rows:
        if r.seq > after.seq:
            break
        if r.seq > expected:
            span = str(expected) if r.seq - 1 == expected else f"{expected}–{r.seq - 1}"
            note(expected, "deleted", f"record{'s' if '–' in span else ''} {span} "
                 "missing between the records before and after")
        expected = max(expected, r.seq + 1)
    if expected <= before.seq:
        span = str(expected) if expected == before.seq else f"{expected}–{before.seq}"
        note(expected, "deleted", f"record{'s' if '–' in span else ''} {span} missing at "
             f"the end (the chain head says {before.seq} records)")

    # chain links between records that are each in order
    for r in rows:
        if r.seq > after.seq or r.seq in found:
            continue
        previous = at.get(r.seq - 1)
        if r.seq == 1:
            if r.prev_hash != GENESIS:
                note(r.seq, "edited", "the first record does not start the chain")
        elif previous is not None and previous.seq not in found \
                and r.prev_hash != previous.hash:
            note(previous.seq, "replaced", f"re-signed with the audit key, but record "
                 f"{r.seq} was chained to another record {previous.seq}")
    last = at.get(before.seq)
    if last is not None and before.seq not in found and last.hash != before.hash:
        note(before.seq, "replaced", "the chain head holds another hash for this record")

    if anchors is not None:
        given = list(anchors)
        mine = sorted((a for a in given if a.chain == after.chain), key=lambda a: a.seq)
        report.anchors = len(mine)
        report.anchored_seq = mine[-1].seq if mine else None
        if given and not mine:
            chains = ", ".join(sorted({a.chain for a in given}))
            note(0, "anchor", f"the repository holds {len(given)} anchors, none of this "
                 f"trail (chain {after.chain}) but of {chains}: the chain's id was changed, "
                 "or this is another catalog's repository")
        for anchor in mine:
            anchored = at.get(anchor.seq)
            if anchored is None:
                if anchor.seq not in found:
                    note(anchor.seq, "anchor", f"missing, but the anchor of {anchor.when()} "
                         "holds it: the trail was cut short or rewritten")
            elif anchored.hash != anchor.hash:
                note(anchor.seq, "anchor", f"differs from the anchor of {anchor.when()}: "
                     f"the history up to record {anchor.seq} was rewritten")

    report.findings = [found[s] for s in sorted(found)]
    return report
