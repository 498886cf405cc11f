"""Packs are stored in the background: the worker that fills a pack goes on at once, a
few uploads run together, a worker waits when every slot is busy, and a failed upload
stops the writer at its next blob or flush."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from medark.errors import BackendError
from medark.repo.compression import CompressionSpec
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.storage.base import Backend
from medark.storage.local import LocalBackend
from medark.storage.wrappers.faulty import FaultyBackend

PW = b"pw"
PACK = 64 * 1024
BLOB = 40 * 1024  # two blobs fill a pack


class GatedBackend:
    """A local backend whose pack uploads wait at a gate, counting those waiting."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def save_file(self, name: str, path: str) -> None:
        with self._lock:
            self.waiting += 1
        self.gate.wait(30)
        self.inner.save_file(name, path)

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)


def small_packs(repo: Repository) -> Repository:
    repo.config = replace(repo.config, pack_size=PACK)
    return repo


def test_full_packs_upload_in_the_background_and_a_writer_waits_for_a_free_slot(
        tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path / "repo"), PW, "aes-256-gcm",
                    CompressionSpec("none"), tmp_path / "cache").close()
    gated = GatedBackend(LocalBackend(tmp_path / "repo"))
    repo = small_packs(Repository.open(gated, PW, tmp_path / "cache"))  # type: ignore[arg-type]
    slots = gated.properties().connections
    blobs = [os.urandom(BLOB) for _ in range(2 * (slots + 1))]
    ids: list[bytes] = []

    def fill(count: int) -> None:
        for data in blobs[len(ids):len(ids) + count]:
            ids.append(repo.save_blob(BlobType.DATA, data).id)

    first = threading.Thread(target=fill, args=(2 * slots,))
    first.start()
    first.join(20)
    assert not first.is_alive(), "the writer waited for its own pack's upload"
    deadline = time.monotonic() + 20  # the upload threads reach the gate on their own time
    while gated.waiting < slots and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gated.waiting == slots  # every slot busy, nothing stored yet
    assert not list(gated.inner.list("data/"))

    more = threading.Thread(target=fill, args=(2,))
    more.start()
    more.join(0.5)
    assert more.is_alive(), "a pack beyond the upload slots did not wait"

    gated.gate.set()
    more.join(20)
    assert not more.is_alive()
    repo.flush()
    repo.close()
    again = Repository.open(LocalBackend(tmp_path / "repo"), PW, tmp_path / "cache2")
    assert [again.load_blob(i) for i in ids] == blobs
    again.close()


def test_a_failed_upload_stops_the_writer_and_nothing_of_it_is_indexed(
        tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path / "repo"), PW, "aes-256-gcm",
                    CompressionSpec("none"), tmp_path / "cache").close()
    faulty = FaultyBackend(LocalBackend(tmp_path / "repo"), transient=False)
    repo = small_packs(Repository.open(faulty, PW, tmp_path / "cache"))
    faulty.fail_save_every = 1
    with pytest.raises(BackendError, match="injected fault"):
        for _ in range(20):
            repo.save_blob(BlobType.DATA, os.urandom(BLOB))
        repo.flush()
    assert faulty.injected["save"] >= 1
    repo.close()
    assert not list(LocalBackend(tmp_path / "repo").list("index/"))
    assert not list(LocalBackend(tmp_path / "repo").list("data/"))
    assert not list((tmp_path / "repo" / ".spool").iterdir())  # no temp pack left behind
