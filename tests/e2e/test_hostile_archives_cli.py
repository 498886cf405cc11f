"""Hostile archives end to end: repositories crafted here (as a compromised host or a
stolen repository key could write them), then the real `medark restore`, `dump` and
`pg restore`. Each refuses with one line naming the entry and exit 19, and a canary
outside the target keeps its bytes and mtime."""

from __future__ import annotations

import io
import os
import pwd
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli, Result

from medark.repo.compression import CompressionSpec
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util import clock

UNSAFE = 19
Build = Callable[[Repository], tuple[list[Node], dict[str, object]]]


class Canary:
    def __init__(self, root: Path) -> None:
        self.dir = root / "outside"
        self.dir.mkdir()
        self.file = self.dir / "canary"
        self.file.write_bytes(b"untouched\n")
        os.utime(self.file, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
        self.before = self._state()

    def _state(self) -> tuple[bytes, int, int, list[str]]:
        st = self.file.stat()
        return (self.file.read_bytes(), st.st_mtime_ns, stat.S_IMODE(st.st_mode),
                sorted(os.listdir(self.dir)))

    def unchanged(self) -> bool:
        return self._state() == self.before


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return Canary(tmp_path)


def _craft(cli: Cli, tmp_path: Path, build: Build) -> None:
    """Write a repository at the CLI's location through the Python API."""
    repo = Repository.init(LocalBackend(cli.repo), PASSWORD.encode(), "aes-256-gcm",
                           CompressionSpec("zstd", 1), cache_dir=tmp_path / "craft-cache")
    try:
        top, source = build(repo)
        snap = Snapshot(time=clock.now(), tree=save_tree(repo, top), paths=["/data"],
                        hostname="ward7", source=source)
        repo.flush()
        save_snapshot(repo, snap)
    finally:
        repo.close()


def _file(repo: Repository, name: str, data: bytes) -> Node:
    return Node(name, "file", mode=stat.S_IFREG | 0o644, size=len(data),
                content=[repo.save_blob(BlobType.DATA, data).id] if data else [])


def _hostile_tree(outside: Path) -> Build:
    def build(repo: Repository) -> tuple[list[Node], dict[str, object]]:
        evil = Node("link", "dir", mode=stat.S_IFDIR | 0o755,
                    subtree=save_tree(repo, [_file(repo, "canary", b"through the link\n")]))
        data = Node("data", "dir", mode=stat.S_IFDIR | 0o755, subtree=save_tree(repo, [
            _file(repo, "ok.txt", b"fine\n"),
            _file(repo, "..", b"dots\n"),
            _file(repo, str(outside / "canary"), b"absolute\n"),
            Node("link", "symlink", mode=stat.S_IFLNK | 0o777, linktarget=str(outside)),
            evil,
        ]))
        return [data], {}
    return build


def _one_line_naming(stderr: str, *names: str) -> None:
    for name in names:
        assert any(name in line for line in stderr.splitlines()), stderr
    assert "Traceback" not in stderr


def test_restore_refuses_a_hostile_tree(cli: Cli, tmp_path: Path, canary: Canary) -> None:
    _craft(cli, tmp_path, _hostile_tree(canary.dir))
    done = cli("restore", "latest", "--target", tmp_path / "restore", check=False)
    assert done.returncode == UNSAFE, done.stderr
    _one_line_naming(done.stderr, "'..'", "'link'", "unsafe entries in the snapshot")
    assert canary.unchanged()
    assert (tmp_path / "restore" / "data" / "ok.txt").read_bytes() == b"fine\n"


def test_dump_refuses_a_hostile_tree(cli: Cli, tmp_path: Path, canary: Canary) -> None:
    _craft(cli, tmp_path, _hostile_tree(canary.dir))
    archive = tmp_path / "out.tar"
    done = cli("dump", "latest", "/", "--archive", "tar", "--target", archive, check=False)
    assert done.returncode == UNSAFE, done.stderr
    _one_line_naming(done.stderr, "unsafe or repeated name")
    assert not archive.exists()  # --target: whole or not at all
    assert canary.unchanged()


def _base_backup(*members: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> Build:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
        info = tarfile.TarInfo("backup_label")
        info.size = len(label)
        tar.addfile(info, io.BytesIO(label))
        for member in members:
            if isinstance(member, tuple):
                tar.addfile(member[0], io.BytesIO(member[1]))
            else:
                tar.addfile(member)
    data = out.getvalue()

    def build(repo: Repository) -> tuple[list[Node], dict[str, object]]:
        source = {"kind": "postgres", "system_id": "7400000000000000001", "timeline": 1,
                  "start_lsn": "0/2000028", "stop_lsn": "0/2000100",
                  "segment_size": 16 * 1024 * 1024, "server_version_num": 150000,
                  "stop_time": clock.format_time(clock.now())}
        return [_file(repo, "base.tar", data)], source
    return build


def _member(name: str, kind: bytes, linkname: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, linkname, 0o700, size
    return info


def _pg_restore(cli: Cli, target: Path) -> Result:
    user = pwd.getpwuid(os.geteuid()).pw_name
    return cli("pg", "restore", "--target-dir", target, "--backup-only", "--os-user", user,
               check=False)


def test_pg_restore_refuses_a_tablespace_link_with_an_entry_beneath(
        cli: Cli, tmp_path: Path, canary: Canary) -> None:
    _craft(cli, tmp_path, _base_backup(
        _member("pg_tblspc", tarfile.DIRTYPE),
        _member("pg_tblspc/16384", tarfile.SYMTYPE, str(canary.dir)),
        (_member("pg_tblspc/16384/canary", tarfile.REGTYPE, size=4), b"evil")))
    done = _pg_restore(cli, tmp_path / "pgdata")
    assert done.returncode == UNSAFE, done.stderr
    _one_line_naming(done.stderr, "'pg_tblspc/16384'", "symbolic link")
    assert canary.unchanged()


def test_pg_restore_refuses_a_planted_link_at_the_password_file(
        cli: Cli, tmp_path: Path, canary: Canary) -> None:
    _craft(cli, tmp_path, _base_backup(_member("base", tarfile.DIRTYPE)))
    target = tmp_path / "pgdata"
    (tmp_path / "pgdata.medark-password").symlink_to(canary.file)
    done = _pg_restore(cli, target)
    assert done.returncode == UNSAFE, done.stderr
    _one_line_naming(done.stderr, "pgdata.medark-password", "symbolic link")
    assert PASSWORD not in done.stderr + done.stdout
    assert canary.unchanged()
