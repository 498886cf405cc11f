"""The Repository: blobs in packs, unpacked sealed objects, keys, locks and the index.

Write order (docs/design.md): packs first, then the index files naming them, then the
snapshot that references their blobs. A crash at any point leaves only unreferenced
packs or index entries, which check reports as harmless and prune removes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Container, Iterator
from dataclasses import replace
from pathlib import Path

from medark.errors import (
    AlreadyExists,
    IntegrityError,
    MedarkError,
    ObjectNotFound,
    RepositoryCorrupt,
    RepositoryNotFound,
    UsageError,
)
from medark.repo import index_file
from medark.repo.adopt import lock_adopting
from medark.repo.compression import CompressionSpec, Compressor, decompress
from medark.repo.config import CONFIG_NAME, RepoConfig
from medark.repo.crypto import MASTER_KEY_LEN, Crypto, content_name, get_suite
from medark.repo.index_cache import IndexCache, temporary_cache_dir
from medark.repo.keys import KdfParams, KeyStore
from medark.repo.locks import HeldLock, LockManager
from medark.repo.named_objects import NamedObjects
from medark.repo.pack import (
    BlobType,
    PackedBlob,
    SaveResult,
    SpooledPack,
    WriteStats,
    pack_name,
    save_spooled,
)
from medark.repo.pack_filler import SealedPack, SealerSettings, seal_blob
from medark.repo.retention import CONFIG_KEY as LOCK_CONFIG_KEY
from medark.repo.retention import LockPolicy, RetentionKeeper, create_lockable
from medark.repo.spool import ProcessSpool
from medark.repo.uploads import PackUploads
from medark.storage.base import Backend
from medark.util import clock

INDEX_EVERY_SECONDS = 1.0
INDEX_EVERY_PACKS = 64
BULK_SYNC_FILES = 8


class Repository(NamedObjects):
    """One open repository. Blob methods are thread-safe."""

    def __init__(
        self,
        backend: Backend,
        crypto: Crypto,
        config: RepoConfig,
        key_id: str,
        cache: IndexCache,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.crypto = crypto
        self.config = config
        self.key_id = key_id
        self.cache = cache
        self._cleanup = cleanup
        """Removes a command's temporary cache (--no-cache)."""
        self.compressor = Compressor(config.compression)
        self.locks = LockManager(backend, crypto.seal, crypto.open, self._store_lock)
        self.stats = WriteStats()
        self.retention: RetentionKeeper | None = None
        """The lock policy and known object expiries (repo/retention.py); None without."""
        self._builders = {t: self._new_pack() for t in BlobType}
        self._builder_lock = threading.Lock()
        self._uploads = PackUploads(backend.properties().connections)
        self._pending: dict[bytes, tuple[bytes, PackedBlob] | None] = {}
        self._unindexed: list[tuple[bytes, list[PackedBlob]]] = []
        self._index_lock = threading.Lock()
        self._spool: tuple[str | None] | None = None
        self.process_spool: ProcessSpool | None = None
        """Where packs are spooled when the backend has no spool of its own (S3,
        `rest:`): under the cache directory, swept by the next writer (repo/spool.py)."""
        self._last_index = clock.monotonic()
        self._timer: threading.Timer | None = None
        self.written_packs: list[tuple[str, int]] = []
        """(name, size) of every pack this session stored, for callers that verify them."""

    # ---- opening -------------------------------------------------------------------

    @staticmethod
    def exists(backend: Backend) -> bool:
        try:
            backend.stat(CONFIG_NAME)
        except ObjectNotFound:
            return False
        return True

    @classmethod
    def require(cls, backend: Backend) -> None:
        """RepositoryNotFound unless `backend` holds a Medark repository (checked before
        any password is asked for)."""
        location = backend.properties().location
        if not backend.exists():
            raise RepositoryNotFound(f"repository {location} does not exist")
        if not cls.exists(backend):
            raise RepositoryNotFound(
                f"{location} is not a Medark repository (no config); run `medark init` first"
            )

    @classmethod
    def init(
        cls,
        backend: Backend,
        password: bytes,
        suite_name: str,
        compression: CompressionSpec,
        cache_dir: Path | None = None,
        lock: LockPolicy | None = None,
        like: Repository | None = None,
        extra: dict[str, object] | None = None,
    ) -> Repository:
        """`like`: share that repository's master key, cipher suite and chunker
        parameters, so blobs keep their ids and `copy` moves packs as they are."""
        if like is not None and like.config.suite != suite_name:
            raise UsageError(f"a repository sharing the key of {like.backend.properties().location}"
                             f" uses its cipher suite ({like.config.suite}), not {suite_name}")
        suite = get_suite(suite_name)
        KdfParams.from_env()  # a refused MEDARK_KDF_N must leave nothing behind
        if backend.exists() and (cls.exists(backend) or any(True for _ in backend.list(""))):
            raise UsageError(
                f"{backend.properties().location} already exists and is not empty; "
                "choose a new location"
            )
        if lock is not None:
            create_lockable(backend)
        backend.create()
        master = os.urandom(MASTER_KEY_LEN) if like is None else like.master_key()
        crypto = Crypto(suite, master)
        config = RepoConfig.new(suite.name, compression)
        if like is not None:
            config = replace(config, chunker=like.config.chunker)
        if extra:  # more fixed settings (the location): recorded once, never rewritten
            config = replace(config, extra={**config.extra, **extra})
        if lock is not None:  # fixed for the repository's life, like the cipher
            config = replace(config, extra={**config.extra, LOCK_CONFIG_KEY: lock.to_doc()})
        keeper = RetentionKeeper.attach(backend, config, None)  # the key and config too
        try:
            key_id = KeyStore(backend).add(suite, master, password)
            backend.save(CONFIG_NAME, crypto.seal(config.to_json()))
        finally:
            if keeper is not None:
                keeper.close()
        return cls._with_cache(backend, crypto, config, key_id, cache_dir)

    @classmethod
    def open(
        cls,
        backend: Backend,
        password: bytes,
        cache_dir: Path | None = None,
        sync_index: bool = True,
        checked: bool = False,
    ) -> Repository:
        """Unlock and open; sync_index=False skips reading the index files (check reads
        them itself and must survive a damaged one; key and unlock do not need them);
        checked=True: the caller has just run require()."""
        location = backend.properties().location
        if not checked:
            cls.require(backend)
        try:
            sealed_config = backend.load(CONFIG_NAME)
        except ObjectNotFound:
            raise RepositoryNotFound(f"{location} lost its config while opening") from None
        key_id, suite, master = KeyStore(backend).unlock(password)
        crypto = Crypto(suite, master)
        try:
            config = RepoConfig.from_json(crypto.open(sealed_config))
        except IntegrityError:
            raise RepositoryCorrupt(f"the config of {location} fails authentication") from None
        if config.suite != suite.name:
            raise RepositoryCorrupt("key file and config disagree about the cipher suite")
        return cls._with_cache(backend, crypto, config, key_id, cache_dir, sync_index)

    @classmethod
    def _with_cache(
        cls,
        backend: Backend,
        crypto: Crypto,
        config: RepoConfig,
        key_id: str,
        cache_dir: Path | None,
        sync_index: bool = True,
    ) -> Repository:
        cleanup = None
        if cache_dir is None:
            cache_dir, cleanup = temporary_cache_dir()
        cache = IndexCache(cache_dir / config.id / "index.sqlite")
        repo = cls(backend, crypto, config, key_id, cache, cleanup)
        repo.process_spool = ProcessSpool(cache_dir / config.id / "spool")
        repo.retention = RetentionKeeper.attach(backend, config,
                                                cache_dir / config.id / "retention.sqlite")
        if sync_index:
            repo.sync_index()
        return repo

    def close(self) -> None:
        """Release everything. Packs not yet stored are dropped (nothing refers to
        them); packs already stored are indexed first, best effort, so that a run
        stopped by an error or Ctrl-C is resumed without sending them again."""
        self._uploads.close()
        with self._index_lock, contextlib.suppress(MedarkError, OSError, sqlite3.Error):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush_index_locked()
            self._forget_pending(self.cache.add_deferred())
        with self._builder_lock:
            for builder in self._builders.values():
                builder.discard()
        if self.process_spool is not None:
            self.process_spool.close()
        self.cache.close()
        if self.retention is not None:
            self.retention.close()
        self.backend.close()
        if self._cleanup is not None:
            self._cleanup()

    # ---- index ---------------------------------------------------------------------

    def index_names(self) -> set[str]:
        return {i.name for i in self.backend.list(index_file.INDEX_PREFIX)}

    def read_index_file(self, name: str) -> bytes:
        raw = self.backend.load(name)
        self._verify_name(name, raw)
        return self.crypto.open(raw)

    def sync_index(self) -> None:
        """Bring the local cache up to the repository's index files."""
        names = self.index_names()
        known = self.cache.known_index_files()
        if known - names:
            self.cache.clear()  # an index file was replaced (prune): rebuild
            known = set()
        new = sorted(names - known)
        if len(new) > BULK_SYNC_FILES:
            self.cache.bulk_load(self._read_index_files(new))
            return
        for name, packs in self._read_index_files(new):
            self.cache.add_index_file(name, packs)

    def _read_index_files(
        self, names: list[str]
    ) -> Iterator[tuple[str, Iterator[tuple[bytes, list[PackedBlob]]]]]:
        for name in names:
            try:
                plain = self.read_index_file(name)
            except ObjectNotFound:
                continue  # removed by a concurrent prune; its successor is listed too
            yield name, index_file.iter_packs(plain)

    def index_packs(self, packs: list[tuple[bytes, list[PackedBlob]]]) -> None:
        """Write index files for packs that are fully stored (and only for those)."""
        with self._index_lock:
            self._write_index(packs)
            self._forget_pending(self.cache.add_deferred())

    def _write_index(self, packs: list[tuple[bytes, list[PackedBlob]]]) -> None:
        """Write the index files (a durable checkpoint); the cache takes them in batches
        (IndexCache.add_later), their blobs found in `_pending` until then."""
        for start in range(0, len(packs), index_file.MAX_PACKS_PER_FILE):
            part = packs[start : start + index_file.MAX_PACKS_PER_FILE]
            name = self.save_unpacked(index_file.INDEX_PREFIX, index_file.encode(part, []))
            self._forget_pending(self.cache.add_later(name, part))

    def _forget_pending(self, packs: list[tuple[bytes, list[PackedBlob]]]) -> None:
        """Blobs the cache has now: no longer this session's to remember."""
        for _pack_id, blobs in packs:
            for blob in blobs:
                self._pending.pop(blob.id, None)

    # ---- blobs ---------------------------------------------------------------------

    def missing_blobs(self, blob_ids: list[bytes]) -> set[bytes]:
        """Which of these blobs neither the index nor this session has (one query per
        few hundred ids, not one per blob)."""
        if not blob_ids:
            return set()
        absent = self.cache.missing(blob_ids)
        return {b for b in absent if b not in self._pending}

    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self._pending or self.cache.has(blob_id)

    def save_blob(
        self, blob_type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None,
        indexed: bool | None = None, compressed: bytes | None = None,
    ) -> SaveResult:
        """Store a blob unless the repository (or this session) already has it.
        `indexed`: whether the index has it, when the caller already asked (in bulk);
        `compressed`: `data` already compressed with this repository's settings (copy
        reuses the source's compression instead of spending a core on it again)."""
        if blob_id is None:
            blob_id = self.crypto.blob_id(data)
        with self._builder_lock:
            if blob_id in self._pending:
                return SaveResult(blob_id, False, 0)
            self._pending[blob_id] = None
        if indexed if indexed is not None else self.cache.has(blob_id):
            with self._builder_lock:
                self._pending.pop(blob_id, None)
            return SaveResult(blob_id, False, 0)
        blob = seal_blob(self.crypto, self.compressor, data, compressed)
        self._append(blob_type, [(blob_id, blob.sealed, blob.raw_length, len(data))])
        return SaveResult(blob_id, True, len(blob.sealed), blob.shrank)

    def save_new_blobs(self, blob_type: BlobType, blobs: list[tuple[bytes, bytes]],
                       absent: Container[bytes]) -> list[SaveResult]:
        """Several blobs with their ids, the index asked about all of them at once
        (`absent`: those it lacks): a batch of small files. One lock hand-off and one
        spool write for the batch instead of two and one per blob, which is what bounded
        a backup of many small files (threads queueing on the builder's lock)."""
        results: list[SaveResult] = []
        sealed: list[tuple[bytes, bytes, int, int]] = []
        for (blob_id, data), new in zip(blobs, self.claim_new(
                [blob_id for blob_id, _data in blobs], absent), strict=True):
            if not new:
                results.append(SaveResult(blob_id, False, 0))
                continue
            blob = seal_blob(self.crypto, self.compressor, data)
            sealed.append((blob_id, blob.sealed, blob.raw_length, len(data)))
            results.append(SaveResult(blob_id, True, len(blob.sealed), blob.shrank))
        if sealed:
            self._append(blob_type, sealed)
        return results

    def claim_new(self, blob_ids: list[bytes], absent: Container[bytes]) -> list[bool]:
        """Which of these blobs the caller is to store: those the index lacks (`absent`)
        and no one in this session stores already, the first of repeated ids only. A
        claimed blob counts as present from now on; the caller must store it before the
        next `flush`."""
        claimed = []
        with self._builder_lock:
            for blob_id in blob_ids:
                new = blob_id in absent and blob_id not in self._pending
                if new:
                    self._pending[blob_id] = None
                claimed.append(new)
        return claimed

    def sealer_settings(self) -> SealerSettings:
        """For a process that seals claimed blobs into packs of its own (pack_filler.py)."""
        return SealerSettings(self.config.suite, self.crypto.master_key,
                              self.config.compression, self.config.pack_size,
                              self._spool_dir())

    def store_sealed_pack(self, pack: SealedPack) -> None:
        """Store and index a pack another process sealed from blobs claimed here; in the
        background like a pack of this process, its spool file removed once stored."""
        def discard() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pack.path)

        def save() -> None:
            try:
                save_spooled(self.backend, pack.pack_id, pack.path)
            finally:
                discard()

        entries = pack.entries
        with self._builder_lock:
            self.stats.data_blobs += len(entries)
        self._store_built_pack(bytes.fromhex(pack.pack_id), entries, pack.size, save, discard)

    def _store_built_pack(self, pack_id: bytes, entries: list[PackedBlob], size: int,
                          save: Callable[[], None], discard: Callable[[], None]) -> None:
        """A pack built elsewhere: its blobs count as present from now on, and it is
        stored in the background like a pack of new blobs, then indexed."""
        with self._builder_lock:
            for entry in entries:
                self._pending.setdefault(entry.id, None)
                self.stats.stored_added += entry.length
                self.stats.plain_added += entry.plain_length

        def store() -> None:
            save()
            self._packed(pack_id, entries, size)

        self._uploads.submit(store, discard)

    def _append(self, blob_type: BlobType, sealed: list[tuple[bytes, bytes, int, int]]
                ) -> None:
        """Add sealed blobs (id, sealed bytes, raw length when compressed else 0, plain
        length) to the open pack; a full pack goes to the uploads."""
        full: SpooledPack | None = None
        with self._builder_lock:
            builder = self._builders[blob_type]
            builder.add_many(blob_type, [(blob_id, blob, raw) for blob_id, blob, raw, _n
                                         in sealed])
            if blob_type == BlobType.DATA:
                self.stats.data_blobs += len(sealed)
            else:
                self.stats.tree_blobs += len(sealed)
            self.stats.plain_added += sum(plain for *_rest, plain in sealed)
            self.stats.stored_added += sum(len(blob) for _id, blob, _r, _p in sealed)
            if len(builder) >= self.config.pack_size:
                full = builder
                self._builders[blob_type] = self._new_pack()
        if full is not None:
            self._submit_pack(full)  # in the background; waits while all slots are busy
        else:
            self._uploads.check()  # a failed upload stops the caller at its next blob
        if self._unindexed and clock.monotonic() - self._last_index >= INDEX_EVERY_SECONDS:
            self._index_if_due()  # packs that landed get indexed even while the next is slow

    def _index_if_due(self) -> None:
        if not self._index_lock.acquire(blocking=False):
            return  # another worker is writing it
        try:
            if clock.monotonic() - self._last_index >= INDEX_EVERY_SECONDS:
                self._flush_index_locked()
        finally:
            self._index_lock.release()

    def _new_pack(self) -> SpooledPack:
        return SpooledPack(self._spool_dir)

    def _spool_dir(self) -> str | None:
        if self._spool is None:
            spool = self.backend.spool_dir()
            if spool is None and self.process_spool is not None:
                spool = self.process_spool.path()
            self._spool = (spool,)
        return self._spool[0]

    def _submit_pack(self, builder: SpooledPack) -> None:
        self._uploads.submit(lambda: self._upload_pack(builder), builder.discard)

    def _upload_pack(self, builder: SpooledPack) -> None:
        try:
            pack_id = builder.store(self.crypto, self.backend)
        finally:
            builder.discard()
        self._packed(bytes.fromhex(pack_id), builder.entries, len(builder))

    def store_raw_pack(self, pack_id: bytes, data: bytes, entries: list[PackedBlob]) -> None:
        """Adopt a pack verbatim from a repository with the same master key (`copy`):
        its blobs are sealed with the key this repository has too. The caller has checked
        `data` against its name."""
        def save() -> None:
            with contextlib.suppress(AlreadyExists):
                self.backend.save(pack_name(pack_id.hex()), data)

        self._store_built_pack(pack_id, entries, len(data), save, lambda: None)

    def _packed(self, raw_pack: bytes, entries: list[PackedBlob], size: int) -> None:
        """Bookkeeping for a stored pack: its blobs are findable now, indexed soon."""
        with self._builder_lock:
            for entry in entries:
                self._pending[entry.id] = (raw_pack, entry)
            self.stats.packs_written += 1
            self.written_packs.append((pack_name(raw_pack.hex()), size))
        with self._index_lock:
            self._unindexed.append((raw_pack, entries))
            since = clock.monotonic() - self._last_index
            if len(self._unindexed) >= INDEX_EVERY_PACKS or since >= INDEX_EVERY_SECONDS:
                self._flush_index_locked()
            elif self._timer is None:  # indexed on time even while every worker waits
                delay = min(max(INDEX_EVERY_SECONDS - since, 0.01), INDEX_EVERY_SECONDS)
                self._timer = threading.Timer(delay, self._index_on_time)
                self._timer.daemon = True
                self._timer.start()

    def _index_on_time(self) -> None:
        """The checkpoint's deadline: packs that landed since the last index file get
        theirs now, not when the next pack lands or the next blob is saved (both can be
        many seconds away on a paced link while all upload slots are busy). An error
        leaves them for the next flush, which raises it."""
        with self._index_lock:
            self._timer = None
            with contextlib.suppress(MedarkError):
                self._flush_index_locked()

    def _flush_index_locked(self) -> None:
        if self._unindexed:
            self._write_index(self._unindexed)  # kept on failure: the next flush retries
            self._unindexed = []
        self._last_index = clock.monotonic()

    def flush(self) -> None:
        """Upload partly filled packs and write the index for everything uploaded."""
        with self._builder_lock:
            builders = [b for b in self._builders.values() if b.entries]
            self._builders = {t: self._new_pack() for t in BlobType}
        for done, builder in enumerate(builders):
            try:
                self._submit_pack(builder)
            except BaseException:
                for rest in builders[done + 1:]:
                    rest.discard()
                raise
        self._uploads.wait()
        with self._index_lock:
            self._flush_index_locked()
            self._forget_pending(self.cache.add_deferred())

    def index_file_of(self, pack_id: bytes) -> str | None:
        """The index file the local index took this pack's entry from."""
        return self.cache.index_file_of(pack_id)

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]:
        pending = self._pending.get(blob_id)
        if pending is not None:
            return pending
        found = self.cache.lookup(blob_id)
        if found is None:
            raise ObjectNotFound(f"blob {blob_id.hex()} is not in the index")
        return found

    def locate_many(self, blob_ids: list[bytes]) -> dict[bytes, tuple[bytes, PackedBlob]]:
        """`locate` for many blobs at once; blobs found nowhere are left out."""
        found = self.cache.lookup_many([b for b in blob_ids if b not in self._pending])
        for blob_id in blob_ids:
            pending = self._pending.get(blob_id)
            if pending is not None:
                found[blob_id] = pending
        return found

    def load_blob(self, blob_id: bytes) -> bytes:
        pack_id, entry = self.locate(blob_id)
        sealed = self.backend.load(pack_name(pack_id.hex()), entry.offset, entry.length)
        return self.decode_blob(entry, sealed, pack_id)

    def decode_blob(self, entry: PackedBlob, sealed: bytes | memoryview,
                    pack_id: bytes) -> bytes:
        """Open, decompress and verify one blob read from a pack."""
        return self.open_blob(entry, sealed, pack_id)[0]

    def open_blob(self, entry: PackedBlob, sealed: bytes | memoryview,
                  pack_id: bytes) -> tuple[bytes, bytes | None]:
        """(plaintext, its stored compressed form or None), verified against the id."""
        try:
            opened = self.crypto.open(sealed)
            plain = decompress(opened, entry.raw_length) if entry.raw_length else opened
        except IntegrityError as exc:
            raise IntegrityError(f"{entry.where(pack_id)}: {exc}") from None
        if self.crypto.blob_id(plain) != entry.id:
            raise IntegrityError(f"{entry.where(pack_id)}: content does not match its id")
        return plain, (opened if entry.raw_length else None)

    # ---- unpacked objects (snapshots, index files, locks) -------------------------

    def save_unpacked(self, prefix: str, plaintext: bytes) -> str:
        sealed = self.crypto.seal(plaintext)
        name = prefix + content_name(sealed)
        with contextlib.suppress(AlreadyExists):  # named by content: a retried save landed
            self.backend.save(name, sealed)
        return name

    def load_unpacked(self, name: str) -> bytes:
        raw = self.backend.load(name)
        self._verify_name(name, raw)
        try:
            return self.crypto.open(raw)
        except IntegrityError as exc:
            raise IntegrityError(f"{name}: {exc}") from None

    @staticmethod
    def _verify_name(name: str, raw: bytes) -> None:
        if content_name(raw) != name.rsplit("/", 1)[-1]:
            raise IntegrityError(f"{name}: content does not match its name")

    def _store_lock(self, sealed: bytes) -> bytes:
        name = "locks/" + content_name(sealed)
        self.backend.save(name, sealed)
        return name.encode()

    def lock(self, exclusive: bool, command: str, warn: Callable[[str], None]) -> HeldLock:
        """Take a lock; a shared one first indexes the packs killed commands left
        unindexed (repo/adopt.py, lock_adopting)."""
        return lock_adopting(self, exclusive, command, warn)

    def keys(self) -> KeyStore:
        return KeyStore(self.backend)

    def master_key(self) -> bytes:
        """For `key add`/`key passwd` only: the master key to wrap with a new password."""
        return self.crypto.master_key
