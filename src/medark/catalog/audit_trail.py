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
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from medark.catalog.audit_append import COLUMNS, GroupCommit, NothingSent, pg_append
from medark.catalog.audit_entry import AuditEntry as AuditEntry  # its callers import it here
from medark.catalog.audit_entry import cleaned_detail
from medark.catalog.audit_key import create_key, default_key_file, read_key
from medark.errors import CatalogError
from medark.util import clock

if TYPE_CHECKING:
    import psycopg

    from medark.catalog.store import Catalog

GENESIS = "0" * 64
"""The previous hash of record 1."""
HASHES = ("sha256", "sm3")
FORMAT_VERSION = 1
RETENTION_DAYS = 180
"""The least time a record is kept (等保 level 3: six months); nothing deletes them."""
HASH_ENV = "MEDARK_AUDIT_HASH"
KEY_FILE_ENV = "MEDARK_AUDIT_KEY_FILE"

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


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)
_encode_string: Any = json.encoder.encode_basestring


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 as is: one byte string per value."""
    return _ENCODER.encode(value).encode("utf-8")


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
        return hmac.digest(key, data, "sha256").hex()  # one call, the same value
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


def hashed_bytes(seq: int, at: str, actor: str, source: str, action: str,
                 target: str | None, result: str, institution: str | None,
                 detail: bytes, hash_alg: str, key: str, prev_hash: str) -> bytes:
    """canonical(hashed_fields(…)) for a detail already encoded by `canonical`: the same
    bytes, without encoding the detail a second time. The keys sort as action, actor,
    at, detail, then the rest, and a nested object's canonical form is the one it has
    alone, so the detail's bytes are spliced between the two halves."""
    q = _json_text
    try:
        if type(seq) is not int:  # a bool or an int subclass: json.dumps decides
            raise TypeError(seq)
        return (f'{{"action":{q(action)},"actor":{q(actor)},"at":{q(at)},"detail":'
                ).encode() + detail + (
            f',"hash_alg":{q(hash_alg)},"institution":{q(institution)},"key_id":{q(key)},'
            f'"prev_hash":{q(prev_hash)},"result":{q(result)},"seq":{seq},'
            f'"source":{q(source)},"target":{q(target)},"v":{FORMAT_VERSION}}}'
        ).encode()
    except TypeError:  # a value that is not a string (encode_basestring refuses it)
        return canonical(hashed_fields(seq, at, actor, source, action, target, result,
                                       institution, json.loads(detail), hash_alg, key,
                                       prev_hash))


def _json_text(value: str | None) -> str:
    """A string (or None) as `canonical` writes it (ensure_ascii off)."""
    return "null" if value is None else _encode_string(value)


def record_hash(record: AuditRecord, seq: int | None = None) -> str:
    """The hash the record's content should have (at sequence number `seq`: where it
    would have been, to tell a moved record from an edited one)."""
    fields = hashed_fields(record.seq if seq is None else seq, format_at(record.at),
                           record.actor, record.source, record.action, record.target,
                           record.result, record.institution, record.detail,
                           record.hash_alg, record.key_id, record.prev_hash)
    return digest(record.hash_alg, canonical(fields))


# ---------------------------------------------------------------- the signing key
# (its file: catalog/audit_key.py)


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


def _checked(entry: AuditEntry) -> bytes:
    """The entry's cleaned detail as canonical JSON (ValueError for a bad entry)."""
    # encoded once, here: TypeError/ValueError now for what JSON cannot hold; these
    # bytes are both hashed (hashed_bytes) and stored
    return canonical(cleaned_detail(entry))


def append(catalog: Catalog, entry: AuditEntry, settings: AuditSettings | None = None
           ) -> int:
    """Append one record and commit it; its sequence number. Waits for a concurrent
    append (another process) to commit first, so the chain is one line. Threads of one
    process appending at once share one transaction (group commit: audit_append)."""
    detail = _checked(entry)
    sign = signer(catalog, settings)
    ticket = _Ticket(entry, detail, sign)
    _appender(catalog).group.submit(ticket)
    return ticket.seq


def append_many(catalog: Catalog, entries: list[AuditEntry],
                settings: AuditSettings | None = None) -> list[int]:
    """Append several records in one transaction (an import, a batch of agent results);
    their sequence numbers, in order."""
    sign = signer(catalog, settings)
    tickets = [_Ticket(e, _checked(e), sign) for e in entries]
    if tickets:
        _appender(catalog).write(tickets)
    return [t.seq for t in tickets]


@dataclass
class _Ticket:
    entry: AuditEntry
    detail: bytes
    """The cleaned detail's canonical JSON."""
    sign: Signer
    seq: int = 0


class _Appender:
    """One catalog's writer: the group commit of its threads and, on PostgreSQL, the
    connection its batches are written on: its own (autocommit: pg_append sends BEGIN
    and COMMIT with its statements), kept between batches and used by one writer at a
    time (a pooled checkout would add a ping and a rollback, two round trips, to each)."""

    MAX_BATCH = 500

    def __init__(self, catalog: Catalog) -> None:
        # the engine, not the catalog: a catalog no longer used is collected, and with
        # it this writer and its connection (the dictionary below holds it weakly)
        self._engine = catalog._engine
        self._url = catalog.public_url
        self._connection: psycopg.Connection[Any] | None = None
        self._write_lock = threading.Lock()
        """append_many writes outside the group commit, on the same connection."""
        self.group = GroupCommit[_Ticket](self.write, self.MAX_BATCH)
        weakref.finalize(catalog, self._close)  # its connection goes with the catalog

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def write(self, tickets: Sequence[_Ticket]) -> None:
        with self._write_lock:
            if self._engine.dialect.name == "postgresql":
                self._write_pg(tickets)
            else:
                _write(self._engine, self._url, tickets)

    def _write_pg(self, tickets: Sequence[_Ticket]) -> None:
        """A kept connection the server has closed meanwhile (a restart, an idle
        timeout) fails before anything is sent: the batch is tried once more on a new
        one. Any other failure is the batch's: its appends raise, nothing is retried (a
        commit whose answer was lost may have happened)."""
        reused = self._connection is not None
        try:
            self._write_pg_once(tickets)
        except NothingSent as exc:
            if not reused:
                raise self._failed(exc.cause) from None
            self._write_pg_once(tickets)

    def _write_pg_once(self, tickets: Sequence[_Ticket]) -> None:
        import psycopg  # a PostgreSQL catalog's only: not imported for SQLite

        connection, self._connection = self._connection, None  # until this batch commits
        try:
            if connection is None:
                args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
                connection = psycopg.connect(*args, **kwargs, autocommit=True)
            pg_append(connection, len(tickets),
                      lambda seq, prev_hash: _chained(tickets, seq, prev_hash))
        except BaseException as exc:
            if connection is not None:  # closing it ends its transaction and the lock
                with contextlib.suppress(Exception):
                    connection.close()
            if isinstance(exc, NothingSent):
                raise
            if isinstance(exc, SQLAlchemyError | psycopg.Error):
                raise self._failed(exc) from None
            raise
        self._connection = connection

    def _failed(self, exc: SQLAlchemyError | psycopg.Error) -> CatalogError:
        reason = _reason(exc) if isinstance(exc, SQLAlchemyError) else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return CatalogError(f"catalog {self._url}: audit append failed: "
                            f"{reason}")


_appenders: weakref.WeakKeyDictionary[Catalog, _Appender] = weakref.WeakKeyDictionary()


def _appender(catalog: Catalog) -> _Appender:
    with _signers_lock:
        found = _appenders.get(catalog)
        if found is None:
            found = _appenders[catalog] = _Appender(catalog)
        return found


def _write(engine: Engine, url: str, tickets: Sequence[_Ticket]) -> None:
    """SQLite: the records of `tickets`, numbered and chained in one transaction. The
    UPDATE first takes the database's write lock (SQLite has no row locks and a read
    takes none); RETURNING gives the new number and, not being set there, the previous
    record's hash."""
    try:
        with engine.begin() as connection:
            last, prev_hash = connection.execute(
                update(head).where(head.c.id == 1).values(seq=head.c.seq + len(tickets))
                .returning(head.c.seq, head.c.hash)).one()
            rows, new_head = _chained(tickets, int(last) - len(tickets), str(prev_hash),
                                      sqlite_time=True)
            # the driver's executemany of tuples: SQLAlchemy's per-row parameter
            # dictionaries cost more than the hashing
            connection.exec_driver_sql(_SQLITE_INSERT, rows)
            connection.execute(update(head).where(head.c.id == 1).values(hash=new_head))
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {url}: audit append failed: "
                           f"{_reason(exc)}") from None


_SQLITE_INSERT = (f"INSERT INTO audit_trail ({', '.join(COLUMNS)}) VALUES "
                  f"({', '.join('?' * len(COLUMNS))})")


def sqlite_stored_time(at_text: str) -> str:
    """A `format_at` time as SQLAlchemy's SQLite DateTime stores it (its bind processor:
    `YYYY-MM-DD HH:MM:SS.ffffff`, UTC, no zone), without parsing it again."""
    return f"{at_text[:10]} {at_text[11:26]}"


def _chained(tickets: Sequence[_Ticket], seq: int, prev_hash: str,
             sqlite_time: bool = False) -> tuple[list[tuple[Any, ...]], str]:
    """The tickets' rows (in audit_append.COLUMNS' order), numbered after `seq` and
    chained after `prev_hash`, and the last one's hash; the time as SQLite stores it
    with `sqlite_time`. Each ticket learns its number here; it is returned only once
    the transaction committed. One time for the batch: its records are written by one
    transaction at one moment (and the time is formatted once, not per record)."""
    rows = []
    at = clock.now().astimezone(UTC)
    at_text = format_at(at)
    stored_at = sqlite_stored_time(at_text) if sqlite_time else at
    for ticket in tickets:
        seq += 1
        entry, sign = ticket.entry, ticket.sign
        data = hashed_bytes(seq, at_text, entry.actor, entry.source, entry.action,
                            entry.target, entry.result, entry.institution, ticket.detail,
                            sign.hash_alg, sign.key_id, prev_hash)
        new_hash = digest(sign.hash_alg, data)
        rows.append((seq, stored_at,
                     entry.actor, entry.source, entry.action, entry.target,
                     entry.result, entry.institution, ticket.detail.decode("utf-8"),
                     sign.hash_alg, sign.key_id, prev_hash, new_hash,
                     mac(sign.hash_alg, sign.key, new_hash.encode("ascii"))))
        ticket.seq = seq
        prev_hash = new_hash
    return rows, prev_hash


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
    return stream_records(catalog, query)


def stream_records(catalog: Catalog, query: Select[Any]) -> Iterator[AuditRecord]:
    """The records a query of the trail's table selects, read as the caller iterates
    (1000 rows at a time: a regional center's trail does not fit in memory);
    CatalogError when the catalog fails."""
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
