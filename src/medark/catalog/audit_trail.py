"""The tamper-evident audit trail: one append-only record per audited action (who, from
where, what, on which object, the result), each carrying the hash of the one before it
and the server's signature, in the catalog (SQLite or PostgreSQL).

Ordering: `append` locks the head row first, inside the transaction that inserts the
record: SELECT … FOR UPDATE on PostgreSQL (a second server process waits, then reads the
new head), an UPDATE of it on SQLite (the database's write lock). So sequence numbers
are gapless and the chain never forks.

Hashing: SHA-256 by default, SM3 for the national suite (MEDARK_AUDIT_HASH=sm3); the
hash covers the canonical JSON of the record including its sequence number, time and
the previous record's hash (docs/audit.md gives the exact form).

Signing: an HMAC (HMAC-SHA256, or HMAC-SM3 with SM3) of the record's hash under a
32-byte key in a 0600 file: beside a SQLite catalog (`<catalog>.audit-key`), or given by
MEDARK_AUDIT_KEY_FILE (every server process of a PostgreSQL catalog needs the same one).
HMAC rather than Ed25519 because: the national suite has an HMAC-SM3 but no signature
scheme `cryptography` offers (SM2 is missing), one key file serves both; an HMAC costs
microseconds, so the append rate is the database's; and whoever verifies is the
operator who holds the server's key anyway. What a key holder could rewrite is caught
by the anchors in the WORM repository (service/audit_anchor.py), not by the signature.

There is no update or delete here, and the catalog's triggers refuse both: records
are kept at least 180 days (docs/audit.md)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from medark.errors import CatalogError
from medark.util import clock

if TYPE_CHECKING:
    from medark.catalog.store import Catalog

GENESIS = "0" * 64
"""The previous hash of record 1."""
RESULTS = ("ok", "denied", "failed")
HASHES = ("sha256", "sm3")
FORMAT_VERSION = 1
RETENTION_DAYS = 180
"""The least time a record is kept (等保 level 3: six months); nothing deletes them."""
HASH_ENV = "MEDARK_AUDIT_HASH"
KEY_FILE_ENV = "MEDARK_AUDIT_KEY_FILE"
KEY_BYTES = 32
SECRET_NAMES = frozenset({"password", "passwd", "new_password", "secret", "token",
                          "api_token", "totp", "otp", "code", "key", "private_key",
                          "cookie", "session"})
"""Keys of `detail` whose values are replaced by "***": a record never holds a secret."""
LIMITS = {"actor": 200, "source": 255, "action": 100, "target": 500, "institution": 200}

_metadata = MetaData()
records = Table(
    "audit_trail", _metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("source", String(255), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(500)),
    Column("result", String(20), nullable=False),
    Column("institution", String(200)),
    Column("detail", Text, nullable=False),
    Column("hash_alg", String(20), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("prev_hash", String(128), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("signature", String(128), nullable=False),
)
head = Table(
    "audit_head", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(128), nullable=False),
    Column("chain", String(32), nullable=False),
)


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


@dataclass(frozen=True)
class AuditRecord:
    """One stored record, as read back."""

    seq: int
    at: datetime
    actor: str
    source: str
    action: str
    target: str | None
    result: str
    institution: str | None
    detail: dict[str, Any]
    hash_alg: str
    key_id: str
    prev_hash: str
    hash: str
    signature: str

    def public(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": format_at(self.at), "actor": self.actor,
                "source": self.source, "action": self.action, "target": self.target,
                "result": self.result, "institution": self.institution,
                "detail": self.detail, "hash_alg": self.hash_alg, "key_id": self.key_id,
                "prev_hash": self.prev_hash, "hash": self.hash, "signature": self.signature}


@dataclass(frozen=True)
class AuditSettings:
    """The hash of new records and the signing key's file (None: the default place)."""

    hash_alg: str = "sha256"
    key_file: Path | None = None

    @classmethod
    def from_environment(cls) -> AuditSettings:
        alg = (os.environ.get(HASH_ENV) or "sha256").lower()
        if alg not in HASHES:
            raise CatalogError(f"{HASH_ENV}={alg}: use sha256 or sm3")
        key_file = os.environ.get(KEY_FILE_ENV)
        return cls(alg, Path(key_file) if key_file else None)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    chain: str


# ---------------------------------------------------------------- hashing and signing


def format_at(at: datetime) -> str:
    """The time as hashed: UTC, microseconds, a Z (what both databases keep exactly)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 as is: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest(alg: str, data: bytes) -> str:
    if alg == "sha256":
        return hashlib.sha256(data).hexdigest()
    if alg == "sm3":
        from cryptography.hazmat.primitives import hashes

        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    raise CatalogError(f"audit record hash {alg!r} is unknown (sha256, sm3)")


def mac(alg: str, key: bytes, data: bytes) -> str:
    """HMAC-SHA256, or HMAC-SM3 for records hashed with SM3."""
    if alg == "sha256":
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    if alg == "sm3":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives import hmac as chmac

        h = chmac.HMAC(key, hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    raise CatalogError(f"audit record hash {alg!r} is unknown (sha256, sm3)")


def key_id(key: bytes) -> str:
    """Names the key in each record without revealing it."""
    return hmac.new(key, b"medark audit key id", hashlib.sha256).hexdigest()[:16]


def hashed_fields(seq: int, at: str, actor: str, source: str, action: str,
                  target: str | None, result: str, institution: str | None,
                  detail: dict[str, Any], hash_alg: str, key: str, prev_hash: str
                  ) -> dict[str, Any]:
    return {"v": FORMAT_VERSION, "seq": seq, "at": at, "actor": actor, "source": source,
            "action": action, "target": target, "result": result,
            "institution": institution, "detail": detail, "hash_alg": hash_alg,
            "key_id": key, "prev_hash": prev_hash}


def record_hash(record: AuditRecord, seq: int | None = None) -> str:
    """The hash the record's content should have (at sequence number `seq`: where it
    would have been, to tell a moved record from an edited one)."""
    fields = hashed_fields(record.seq if seq is None else seq, format_at(record.at),
                           record.actor, record.source, record.action, record.target,
                           record.result, record.institution, record.detail,
                           record.hash_alg, record.key_id, record.prev_hash)
    return digest(record.hash_alg, canonical(fields))


# ---------------------------------------------------------------- the signing key


def default_key_file(catalog_url: str) -> Path:
    """Beside a SQLite catalog; for PostgreSQL in the user's state directory (a
    regional center gives every server process the same file: MEDARK_AUDIT_KEY_FILE)."""
    if catalog_url.startswith("sqlite:///"):
        path = catalog_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            return Path(path + ".audit-key")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    tail = catalog_url.split("://", 1)[-1].rpartition("@")[2]
    name = "".join(c if c.isalnum() or c in "-." else "_" for c in tail)[:120]
    return Path(state) / "medark" / "audit-keys" / f"{name}.key"


def read_key(path: Path) -> bytes:
    """The key in `path` (hex), refusing a file others may read."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise CatalogError(f"audit key {path}: readable by others (mode "
                               f"{st.st_mode & 0o777:o}); chmod 600 it")
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a key"
        raise CatalogError(f"audit key {path}: {reason}") from None
    if len(key) < KEY_BYTES:
        raise CatalogError(f"audit key {path}: shorter than {KEY_BYTES} bytes")
    return key


def create_key(path: Path) -> bytes:
    """A new random key at `path`, mode 0600, unless one appeared meanwhile (another
    process): written aside, then linked in, so nobody reads half a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    return read_key(path)


@dataclass(frozen=True)
class Signer:
    hash_alg: str
    key: bytes
    key_id: str
    key_file: Path


_signers: dict[tuple[str, str, str], Signer] = {}
_signers_lock = threading.Lock()


def signer(catalog: Catalog, settings: AuditSettings | None = None) -> Signer:
    """The hash and key new records get (cached per catalog and key file). A missing
    key is created only for an empty trail: records signed with a key that is not here
    must not silently continue under a new one."""
    settings = settings or AuditSettings.from_environment()
    path = settings.key_file or default_key_file(catalog.url)
    cache_key = (catalog.url, str(path), settings.hash_alg)
    with _signers_lock:
        found = _signers.get(cache_key)
        if found is not None:
            return found
        if path.exists():
            key = read_key(path)
        else:
            # the head before the file: a process that appended made its key first
            current = read_head(catalog)
            if current.seq > 0 and not path.exists():
                raise CatalogError(
                    f"audit key {path} is missing but the audit trail has {current.seq} "
                    f"records: put the key that signed them there, or name it with "
                    f"{KEY_FILE_ENV}")
            key = create_key(path)
        made = Signer(settings.hash_alg, key, key_id(key), path)
        _signers[cache_key] = made
        return made


# ---------------------------------------------------------------- append and read


def _clean(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): ("***" if str(k).lower() in SECRET_NAMES else _clean(v))
                for k, v in detail.items()}
    if isinstance(detail, list | tuple):
        return [_clean(v) for v in detail]
    return detail


def _checked(entry: AuditEntry) -> dict[str, Any]:
    if entry.result not in RESULTS:
        raise ValueError(f"audit result {entry.result!r}: use one of {', '.join(RESULTS)}")
    for name, limit in LIMITS.items():
        value = getattr(entry, name)
        if value is not None and len(value) > limit:
            raise ValueError(f"audit {name} is longer than {limit} characters")
    if not entry.actor or not entry.source or not entry.action:
        raise ValueError("an audit record needs an actor, a source and an action")
    detail: dict[str, Any] = _clean(dict(entry.detail))
    canonical(detail)  # TypeError/ValueError now for what JSON cannot hold
    return detail


def append(catalog: Catalog, entry: AuditEntry, settings: AuditSettings | None = None
           ) -> int:
    """Append one record and commit it; its sequence number. Waits for a concurrent
    append (another process) to commit first, so the chain is one line. Threads of one
    process appending at once share one transaction (group commit: see _Batcher)."""
    detail = _checked(entry)
    sign = signer(catalog, settings)
    return _batcher(catalog).submit(_Ticket(entry, detail, sign))


def append_many(catalog: Catalog, entries: list[AuditEntry],
                settings: AuditSettings | None = None) -> list[int]:
    """Append several records in one transaction (an import, a batch of agent results);
    their sequence numbers, in order."""
    sign = signer(catalog, settings)
    tickets = [_Ticket(e, _checked(e), sign) for e in entries]
    _write(catalog, tickets)
    return [t.seq for t in tickets]


@dataclass
class _Ticket:
    entry: AuditEntry
    detail: dict[str, Any]
    sign: Signer
    seq: int = 0
    error: BaseException | None = None


class _Batcher:
    """Group commit: each commit waits for the disk (and, on a shared catalog, holds the
    head row's lock meanwhile), so one transaction per record caps a process at a few
    hundred records/s. The first thread to arrive writes; threads arriving while it
    writes queue, and the next of them writes the whole queue in one transaction. Each
    append still returns only after its own record is committed."""

    MAX_BATCH = 500

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._cv = threading.Condition()
        self._queue: list[_Ticket] = []
        self._writing = False
        self._connection: Connection | None = None
        """Kept between batches, used by one writer at a time: a pooled checkout would
        add a ping and a rollback, two round trips, to every append."""

    def submit(self, ticket: _Ticket) -> int:
        with self._cv:
            self._queue.append(ticket)
            while ticket.seq == 0 and ticket.error is None:
                if self._writing:
                    self._cv.wait()
                    continue
                self._writing = True
                batch, self._queue = (self._queue[:self.MAX_BATCH],
                                      self._queue[self.MAX_BATCH:])
                self._cv.release()
                try:
                    self._write(batch)
                except BaseException as exc:  # every waiter of the batch learns it
                    for waiting in batch:
                        waiting.error = exc
                finally:
                    self._cv.acquire()
                    self._writing = False
                    self._cv.notify_all()
        if ticket.error is not None:
            raise ticket.error
        return ticket.seq


    def _write(self, batch: list[_Ticket]) -> None:
        connection = self._connection
        try:
            if connection is None:
                connection = self._catalog._engine.connect()
            with connection.begin():
                _append(connection, batch)
            self._connection = connection
        except SQLAlchemyError as exc:
            self._connection = None
            if connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    connection.close()
            raise CatalogError(f"catalog {self._catalog.public_url}: audit append failed: "
                               f"{_reason(exc)}") from None


_batchers: weakref.WeakKeyDictionary[Catalog, _Batcher] = weakref.WeakKeyDictionary()


def _batcher(catalog: Catalog) -> _Batcher:
    with _signers_lock:
        found = _batchers.get(catalog)
        if found is None:
            found = _batchers[catalog] = _Batcher(catalog)
        return found


def _write(catalog: Catalog, tickets: list[_Ticket]) -> None:
    """The records of `tickets`, numbered and chained in one transaction."""
    try:
        with catalog._engine.begin() as connection:
            _append(connection, tickets)
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: audit append failed: "
                           f"{_reason(exc)}") from None


def _append(connection: Connection, tickets: list[_Ticket]) -> None:
    # the lock before anything is read. PostgreSQL: FOR UPDATE, then one UPDATE at the
    # end (one new row version per transaction, not two). SQLite has no row locks and
    # a read takes none: the UPDATE first takes the write lock; RETURNING gives the new
    # number and, not being set there, the previous record's hash
    if connection.dialect.name == "postgresql":
        current, prev_hash = connection.execute(
            select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()).one()
        last = int(current) + len(tickets)
    else:
        last, prev_hash = connection.execute(
            update(head).where(head.c.id == 1).values(seq=head.c.seq + len(tickets))
            .returning(head.c.seq, head.c.hash)).one()
    seq = int(last) - len(tickets)
    rows = []
    for ticket in tickets:
        seq += 1
        entry, sign = ticket.entry, ticket.sign
        at = clock.now().astimezone(UTC)
        fields = hashed_fields(seq, format_at(at), entry.actor, entry.source, entry.action,
                               entry.target, entry.result, entry.institution, ticket.detail,
                               sign.hash_alg, sign.key_id, prev_hash)
        new_hash = digest(sign.hash_alg, canonical(fields))
        rows.append({
            "seq": seq, "at": at, "actor": entry.actor, "source": entry.source,
            "action": entry.action, "target": entry.target, "result": entry.result,
            "institution": entry.institution,
            "detail": canonical(ticket.detail).decode("utf-8"), "hash_alg": sign.hash_alg,
            "key_id": sign.key_id, "prev_hash": prev_hash, "hash": new_hash,
            "signature": mac(sign.hash_alg, sign.key, new_hash.encode("ascii"))})
        prev_hash = new_hash
    connection.execute(records.insert(), rows)
    connection.execute(update(head).where(head.c.id == 1).values(seq=last, hash=prev_hash))
    for ticket, row in zip(tickets, rows, strict=True):
        ticket.seq = row["seq"]


def read_head(catalog: Catalog) -> Head:
    try:
        with catalog._engine.connect() as connection:
            return _head(connection)
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None


def stored_record(row: Any) -> AuditRecord:
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {"unreadable": row.detail}
    if not isinstance(detail, dict):
        detail = {"unreadable": row.detail}
    return AuditRecord(int(row.seq), at, row.actor, row.source, row.action, row.target,
                       row.result, row.institution, detail, row.hash_alg, row.key_id,
                       row.prev_hash, row.hash, row.signature)


def read_records(catalog: Catalog, start: datetime | None = None,
                 end: datetime | None = None) -> Iterator[AuditRecord]:
    """Records in sequence order (with times in [start, end)), streamed."""
    query = select(records).order_by(records.c.seq)
    if start is not None:
        query = query.where(records.c.at >= start.astimezone(UTC))
    if end is not None:
        query = query.where(records.c.at < end.astimezone(UTC))
    try:
        with catalog._engine.connect() as connection:
            result = connection.execution_options(yield_per=1000).execute(query)
            for row in result:
                yield stored_record(row)
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None


def snapshot(catalog: Catalog) -> tuple[Head, list[AuditRecord], Head]:
    """The head, every record, and the head again, read in that order: an append is one
    transaction (head and record), so a record numbered beyond the second head was not
    appended, and the first head's records must all be there, even with appends running
    meanwhile (SQLite reads outside a transaction)."""
    try:
        with catalog._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                before = _head(connection)
                rows = [stored_record(r) for r in
                        connection.execute(select(records).order_by(records.c.seq))]
                after = _head(connection)
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None
    return before, rows, after


def _head(connection: Connection) -> Head:
    row = connection.execute(
        select(head.c.seq, head.c.hash, head.c.chain).where(head.c.id == 1)).one()
    return Head(int(row.seq), str(row.hash), str(row.chain))


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return str(orig).strip().splitlines()[0]
    return type(exc).__name__
