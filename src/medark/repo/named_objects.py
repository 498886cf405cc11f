"""Named objects (the WAL archive): sealed, written once, named by their meaning rather
than their content; a part of Repository kept apart so that the blob store reads alone."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from medark.errors import ObjectNotFound
from medark.repo.config import CONFIG_NAME
from medark.repo.crypto import Crypto
from medark.repo.pack import PackedBlob, pack_name
from medark.repo.retention import RetentionKeeper
from medark.storage.base import Backend
from medark.util import clock


class NamedObjects:
    """Mixed into Repository, which provides these."""

    backend: Backend
    crypto: Crypto
    retention: RetentionKeeper | None

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]:
        raise NotImplementedError

    def index_file_of(self, pack_id: bytes) -> str | None:
        raise NotImplementedError

    def seal(self, plaintext: bytes) -> bytes:
        return self.crypto.seal(plaintext)

    def unseal(self, sealed: bytes) -> bytes:
        return self.crypto.open(sealed)

    def save_object(self, name: str, data: bytes, needs: Iterable[bytes] = ()) -> None:
        """Write a named record; with a lock period, first extend the lock of the packs
        (and index files) holding the blobs it `needs` — a WAL segment's all-zero tail is
        one blob in an old pack, which must outlive every segment that shares it."""
        if self.retention is not None:
            self._protect_blobs(needs)
        self.backend.save(name, data)

    def _protect_blobs(self, blob_ids: Iterable[bytes]) -> None:
        assert self.retention is not None
        names = {CONFIG_NAME}
        for pack_id in {self.locate(b)[0] for b in blob_ids}:
            names.add(pack_name(pack_id.hex()))
            index_name = self.index_file_of(pack_id)
            if index_name is not None:
                names.add(index_name)
        self.retention.ensure(names, self.retention.horizon(clock.now()))

    def load_object(self, name: str) -> bytes:
        return self.backend.load(name)

    def object_exists(self, name: str) -> bool:
        try:
            self.backend.stat(name)
        except ObjectNotFound:
            return False
        return True

    def remove_object(self, name: str) -> None:
        self.backend.remove(name)

    def list_names(self, prefix: str) -> Iterator[str]:
        for info in self.backend.list(prefix):
            yield info.name
