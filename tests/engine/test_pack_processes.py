"""Reader processes for many small files (engine/pack_processes.py): a backup whose
small files are read and sealed in other processes is the backup the threads would have
made, node for node and blob for blob; nothing is stored twice across processes; the
spool is left empty; a process that dies stops the backup with one line."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dicom_samples import Instance, uid, write_instance

from medark.engine.backup import Backup
from medark.engine.backup_model import BackupOptions
from medark.engine.check import Checker, CheckOptions
from medark.engine.check_model import DataSubset, Problem
from medark.engine.dicom_catalog import CatalogBuilder
from medark.engine.pack_processes import (
    GONE,
    REREAD,
    BatchRead,
    PackProcess,
    PackProcessError,
    ProcessSettings,
)
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.sources.files.reading import version
from medark.storage.local import LocalBackend
from medark.util.progress import NullProgress

SAME = b"the same letter, filed in many folders\n" * 40


def _tree(root: Path) -> Path:
    """Compressible and random small files, empty ones, one content in many folders
    (twice in one batch too), a symlink and a file just under the chunking size."""
    for d in range(12):
        folder = root / f"ward{d:02}"
        folder.mkdir(parents=True)
        for f in range(60):
            size = (f * 797 + d * 131) % 9000
            data = (b"report %d line\n" % f) * (size // 15) if f % 3 else os.urandom(size)
            (folder / f"doc{f:03}.txt").write_bytes(data)
        (folder / "letter.txt").write_bytes(SAME)
        (folder / "letter-copy.txt").write_bytes(SAME)
        (folder / "empty").write_bytes(b"")
        (folder / "link").symlink_to("letter.txt")
    return root


def _repo(path: Path, like: Repository | None = None) -> Repository:
    return Repository.init(LocalBackend(path / "repo"), b"pw", DEFAULT_SUITE,
                           CompressionSpec("zstd", 3), cache_dir=path / "cache", like=like)


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[tuple[Repository, Repository]]:
    """Two repositories sharing one master key: the same data gives the same ids."""
    first = _repo(tmp_path / "a")
    second = _repo(tmp_path / "b", like=first)
    yield first, second
    first.close()
    second.close()


def _backup(repo: Repository, root: Path, processes_after: int | None) -> tuple[Backup, dict]:
    backup = Backup(repo, BackupOptions(paths=[str(root)], host="h", workers=2,
                                        processes_after=processes_after), NullProgress())
    result = backup.run()
    return backup, result.summary


def test_processes_make_the_backup_the_threads_make(repos: tuple[Repository, Repository],
                                                    tmp_path: Path) -> None:
    root = _tree(tmp_path / "store")
    threads_repo, processes_repo = repos
    threaded, by_threads = _backup(threads_repo, root, None)
    in_processes, by_processes = _backup(processes_repo, root, 0)
    assert threaded._processes is None or threaded._processes.started == 0
    assert in_processes._processes is not None and in_processes._processes.started == 2
    # Same nodes, same blobs: the same tree of the store, hence byte-identical restores.
    assert by_processes["snapshot_id"] != by_threads["snapshot_id"]
    for key in ("files_new", "data_blobs", "data_added", "bytes_read", "content_sampled",
                "content_encrypted", "errors"):
        assert by_processes.get(key) == by_threads.get(key), key
    # data_added_packed counts the root trees too, which differ (_store_tree): the data
    # blobs are sealed to the same bytes
    assert _data_stored(processes_repo) == _data_stored(threads_repo) > 0
    assert _store_tree(processes_repo, root) == _store_tree(threads_repo, root)
    # One copy of the repeated letter (claimed once, whichever process read it first).
    assert by_processes["data_blobs"] == len(set(_contents(root)))
    assert list((tmp_path / "b" / "repo" / ".spool").iterdir()) == []
    result = Checker(processes_repo, CheckOptions(read_data=DataSubset(), workers=2), _Quiet(),
                     tmp_path).run()
    assert result.errors == [] and result.unreferenced_packs == []
    assert result.stats.packs_read == result.stats.packs


class _Quiet:
    def phase(self, title: str) -> NullProgress:
        return NullProgress()

    def problem(self, problem: Problem) -> None:
        pass


def _store_tree(repo: Repository, root: Path) -> bytes | None:
    """The subtree of the backed-up folder: not the root tree, whose nodes for /tmp and
    the test's folders change whenever another process creates a file in them."""
    from medark.snapshot.store import all_snapshots, walk

    (snapshot,) = all_snapshots(repo)
    (store,) = [node for path, node in walk(repo, snapshot.tree) if path == str(root)]
    assert store.subtree is not None
    return store.subtree


def _data_stored(repo: Repository) -> int:
    """The sealed bytes of the repository's data blobs."""
    return sum(blob.length for _pack, blob in repo.cache.blobs() if blob.type == BlobType.DATA)


def _contents(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and p.stat().st_size]


def test_a_second_backup_in_processes_stores_only_what_changed(
        repos: tuple[Repository, Repository], tmp_path: Path) -> None:
    root = _tree(tmp_path / "store")
    repo, _ = repos
    _, first = _backup(repo, root, 0)
    changed = root / "ward03" / "doc007.txt"
    changed.write_bytes(b"amended " * 200)
    (root / "ward05" / "new.txt").write_bytes(SAME)  # a known content: not stored again
    _, summary = _backup(repo, root, 0)
    assert summary["files_changed"] == 1 and summary["files_new"] == 1
    assert summary["data_blobs"] - first["data_blobs"] == 1  # the repository's running count


def _settings(repo: Repository, index: bool = True) -> ProcessSettings:
    path = repo.cache.path if index else None
    return ProcessSettings(repo.sealer_settings(), 64 * 1024, 0, str(path) if path else None)


def _answer(process: PackProcess, jobs: list[tuple[str, tuple[int, int, int, int, int]]],
            claims: list[bool] | None = None) -> BatchRead:
    """One batch's answer; its claim: `claims`, or every blob."""
    def on_read(answer: BatchRead, claim: Callable[[list[bool]], None]) -> BatchRead:
        ids = [r for r in answer.reads if isinstance(r, bytes) and r]
        claim(claims if claims is not None else [True] * len(ids))
        return answer

    return process.submit(jobs, on_read).result(timeout=60)


def test_a_process_tells_gone_and_changed_files_apart(repos: tuple[Repository, Repository],
                                                      tmp_path: Path) -> None:
    repo, _ = repos
    kept, gone, grown, again = (tmp_path / n for n in ("kept", "gone", "grown", "again"))
    for path in (kept, gone, grown, again):
        path.write_bytes(b"x" * 100)
    before = {p: os.lstat(p) for p in (kept, gone, grown, again)}
    gone.unlink()
    grown.write_bytes(b"y" * 300)
    process = PackProcess(_settings(repo))
    try:
        answer = _answer(process, [(str(p), version(before[p]))
                                   for p in (kept, gone, grown, again)], [True, False])
        x = repo.crypto.blob_id(b"x" * 100)
        assert answer.reads == [x, GONE, REREAD, x] and answer.heads is None
        assert answer.samples[0] is not None  # sealed
        assert answer.samples[1] is None  # the same content again: not sealed twice
        assert answer.packs == []
        (pack,) = process.finish()
        assert [e.id for e in pack.entries] == [x]
        assert os.path.getsize(pack.path) == pack.size
        os.unlink(pack.path)
    finally:
        process.close()


def test_a_blob_the_index_has_is_not_compressed_again(repos: tuple[Repository, Repository],
                                                       tmp_path: Path) -> None:
    """A rerun after a kill reads what the killed run stored: it hashes, not compresses."""
    repo, _ = repos
    known = tmp_path / "known"
    known.write_bytes(b"stored by the killed run " * 50)
    repo.save_blob(BlobType.DATA, known.read_bytes())
    repo.flush()
    process = PackProcess(_settings(repo))
    try:
        answer = _answer(process, [(str(known), version(os.lstat(known)))], [False])
        assert answer.samples == [None]
        assert process.finish() == []
    finally:
        process.close()


def test_a_process_that_dies_is_one_error(repos: tuple[Repository, Repository],
                                          tmp_path: Path) -> None:
    repo, _ = repos
    process = PackProcess(_settings(repo, index=False))
    try:
        _answer(process, [])
        os.kill(process._process.pid, signal.SIGKILL)
        with pytest.raises(PackProcessError, match=r"ended unexpectedly.*-9"):
            _answer(process, [])
        with pytest.raises(PackProcessError):  # and so does everything after
            _answer(process, [])
    finally:
        process.close()


def test_the_dicom_catalog_reads_the_heads_a_process_sends(
        repos: tuple[Repository, Repository], tmp_path: Path) -> None:
    """The catalog parses each new instance's header: from the head a process sends back,
    the same catalog as from the file a thread read (same key: the same catalog tree)."""
    root = tmp_path / "pacs"
    for i in range(40):
        study = i // 10 + 1
        write_instance(root, Instance(f"{study:02}/{i:03}.dcm", f"P{study}", "张^三",
                                      uid(study), uid(study, 1), uid(study, 1, i + 1),
                                      pixels=os.urandom(2048)))
    catalogs = []
    for repo, after in zip(repos, (None, 0), strict=True):
        builder = CatalogBuilder(repo, repo.config.chunker, repo.flush)  # type: ignore[arg-type]
        snapshot = Backup(repo, BackupOptions(paths=[str(root)], host="pacs", workers=2,
                                              observer=builder, processes_after=after),
                          NullProgress()).run().snapshot
        assert snapshot.dicom_catalog["instances"] == 40
        catalogs.append(snapshot.dicom_catalog)
    assert catalogs[0]["tree"] == catalogs[1]["tree"]
