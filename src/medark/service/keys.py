"""Key management (`key list|add|remove|passwd`) and opening a repository for commands
that need no index (key, unlock, check).

Every key file wraps the same master key under its own password, so adding a key is
wrapping the master key once more, and `passwd` is add-then-remove (the new key exists
before the old one goes: a crash in between leaves two keys, never none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from medark.errors import AmbiguousId, MedarkError, ObjectNotFound, RepositoryNotFound, UsageError
from medark.repo.keys import KEYS_PREFIX, key_info, verify_key_file
from medark.repo.repository import Repository
from medark.service.session import locked
from medark.storage.registry import open_backend


def open_unindexed(location: str, password: bytes) -> Repository:
    """Open without reading the index files into a cache: fast, touches no local cache,
    and works even when an index file is damaged (which check must be able to report)."""
    backend = open_backend(location)
    if not backend.exists():
        raise RepositoryNotFound(f"repository {location} does not exist")
    return Repository.open(backend, password, cache_dir=None, sync_index=False)


@contextmanager
def unindexed_repository(
    location: str, password: bytes, lock: str | None, command: str, warn: Callable[[str], None]
) -> Iterator[Repository]:
    """open_unindexed, optionally locked ('shared' or 'exclusive'), closed afterwards."""
    repo = open_unindexed(location, password)
    try:
        if lock is None:
            yield repo
        else:
            with locked(repo, lock == "exclusive", command, warn):
                yield repo
    finally:
        repo.close()


@dataclass(frozen=True)
class KeyEntry:
    id: str
    username: str
    hostname: str
    created: str
    current: bool
    damaged: str = ""
    """Why the key file fails verification; empty when it is intact."""

    def public(self) -> dict[str, object]:
        """restic's `key list --json` field names."""
        doc: dict[str, object] = {
            "current": self.current, "id": self.id, "userName": self.username,
            "hostName": self.hostname, "created": self.created,
        }
        if self.damaged:
            doc["damaged"] = self.damaged
        return doc


def list_keys(repo: Repository) -> list[KeyEntry]:
    """Every key file, oldest first; a damaged one is listed with the reason, not fatal."""
    entries = []
    for name in repo.keys().names():
        try:
            raw = repo.backend.load(name)
        except ObjectNotFound:
            continue  # removed while we listed
        key_id = name.removeprefix(KEYS_PREFIX)
        damaged = ""
        try:
            verify_key_file(name, raw)
        except MedarkError as exc:
            damaged = str(exc)
        try:
            info = key_info(name, raw)
            user, host, created = info.username, info.hostname, info.created
        except MedarkError:
            user = host = created = ""
        entries.append(KeyEntry(key_id, user, host, created, key_id == repo.key_id, damaged))
    return sorted(entries, key=lambda e: (e.created, e.id))


def find_key(repo: Repository, ref: str) -> str:
    """The full id of the key named by `ref` (a unique prefix of at least 4 characters)."""
    ref = ref.strip().lower()
    if len(ref) < 4:
        raise UsageError(f"key id {ref!r} is too short: give at least 4 characters")
    ids = [n.removeprefix(KEYS_PREFIX) for n in repo.keys().names()]
    matches = [i for i in ids if i.startswith(ref)]
    if not matches:
        raise ObjectNotFound(f"no key with id {ref!r} (see `medark key list`)")
    if len(matches) > 1:
        raise AmbiguousId(f"key id prefix {ref!r} is ambiguous; give more characters")
    return matches[0]


def add_key(repo: Repository, password: bytes) -> str:
    """Wrap the master key with a new password; returns the new key's id."""
    if not password:
        raise UsageError("the new password is empty")
    return repo.keys().add(repo.crypto.suite, repo.crypto.master_key, password)


def remove_key(repo: Repository, ref: str) -> str:
    """Remove a key that is neither the one in use nor the last one; returns its id."""
    key_id = find_key(repo, ref)
    if key_id == repo.key_id:
        raise UsageError(
            f"refusing to remove key {key_id[:8]}: it is the key in use by this command; "
            "open the repository with another key's password to remove it"
        )
    if len(repo.keys().names()) <= 1:
        raise UsageError(f"refusing to remove key {key_id[:8]}: it is the last key")
    repo.keys().remove(key_id)
    return key_id


def change_password(repo: Repository, password: bytes) -> tuple[str, str]:
    """Add a key for the new password, then remove the current one: (new id, old id)."""
    new_id = add_key(repo, password)
    old_id = repo.key_id
    repo.keys().remove(old_id)
    repo.key_id = new_id
    return new_id, old_id
