"""Hostile input never makes a restore write outside its target (docs/design.md, "Restores
stay inside their target"): snapshot trees, base-backup tars, xbstreams and secret files,
each built here, each with a canary outside the target that must stay as it was."""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from medark.engine.dump import dump
from medark.engine.pg_restore import extract_tar, restore_base
from medark.engine.restore import RestoreOptions, restore
from medark.errors import MedarkError, UnsafeEntry
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.service.pg import write_password_file
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.sources.mysql.server import feed
from medark.sources.mysql.xbstream import XbstreamGuard
from medark.util import clock
from medark.util.confine import private_dir, split_name
from medark.util.progress import NullProgress
from medark.util.secret_file import write_secret_file


class Canary:
    """A directory outside the target with one file: its bytes, mtime and listing must
    not change."""

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


# ---- snapshot trees (medark restore, medark dump) --------------------------------------


def _file(repo: Repository, name: str, data: bytes) -> Node:
    blob = repo.save_blob(BlobType.DATA, data).id
    return Node(name, "file", mode=stat.S_IFREG | 0o644, size=len(data), content=[blob],
                mtime_ns=1_700_000_000_000_000_000)


def _dir(repo: Repository, name: str, children: list[Node]) -> Node:
    return Node(name, "dir", mode=stat.S_IFDIR | 0o755, subtree=save_tree(repo, children))


def _snapshot(repo: Repository, top: list[Node]) -> Snapshot:
    snap = Snapshot(time=clock.now(), tree=save_tree(repo, top), paths=["/data"],
                    hostname="ward7")
    repo.flush()
    save_snapshot(repo, snap)
    return snap


def hostile_tree(repo: Repository, outside: Path) -> Snapshot:
    """`..`, an absolute name, a name with a '/', and a symlink to `outside` followed by a
    directory of the same name holding a file: every way out a tree could try."""
    evil = _dir(repo, "link", [_file(repo, "evil", b"written through the link\n")])
    data = _dir(repo, "data", [
        _file(repo, "ok.txt", b"fine\n"),
        _file(repo, "..", b"dots\n"),
        _file(repo, str(outside / "canary"), b"absolute\n"),
        _file(repo, "../../outside/canary", b"traversal\n"),
        Node("link", "symlink", mode=stat.S_IFLNK | 0o777, linktarget=str(outside)),
        evil,
    ])
    return _snapshot(repo, [data])


def test_a_hostile_tree_is_refused_and_nothing_leaves_the_target(
        repo: Repository, tmp_path: Path, canary: Canary) -> None:
    snap = hostile_tree(repo, canary.dir)
    target = tmp_path / "restore"
    summary = restore(repo, snap, RestoreOptions(str(target)), NullProgress())
    assert summary.unsafe == 4  # '..', the absolute name, the traversal, the second 'link'
    with pytest.raises(UnsafeEntry, match="4 unsafe entries"):
        summary.raise_for_problems()
    assert any("'..'" in e for e in summary.errors)
    assert any("'link'" in e for e in summary.errors)
    assert canary.unchanged()
    assert (target / "data" / "ok.txt").read_bytes() == b"fine\n"
    assert os.readlink(target / "data" / "link") == str(canary.dir)  # made, not followed
    assert sorted(os.listdir(target / "data")) == ["link", "ok.txt"]


def test_a_link_already_in_the_target_is_replaced_not_followed(
        repo: Repository, tmp_path: Path, canary: Canary) -> None:
    snap = _snapshot(repo, [_dir(repo, "data", [_file(repo, "canary", b"restored\n")])])
    target = tmp_path / "restore"
    target.mkdir()
    (target / "data").symlink_to(canary.dir)
    summary = restore(repo, snap, RestoreOptions(str(target)), NullProgress())
    summary.raise_for_problems()
    assert canary.unchanged()
    assert not (target / "data").is_symlink()
    assert (target / "data" / "canary").read_bytes() == b"restored\n"


def test_dump_refuses_a_hostile_tree_and_what_it_wrote_is_safe(
        repo: Repository, canary: Canary) -> None:
    snap = hostile_tree(repo, canary.dir)
    out = io.BytesIO()
    with pytest.raises(UnsafeEntry, match="unsafe or repeated name"):
        dump(repo, snap, "/", out, "tar")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r|*") as tar:
        names = [m.name for m in tar]
    for name in names:
        assert not name.startswith("/") and ".." not in name.split("/")
    assert "data/link/evil" not in names


# ---- base-backup tars (medark pg restore) ----------------------------------------------


def _tar(*members: tuple[str, str, bytes | str]) -> bytes:
    """(kind, name, data or link target) → a tar stream, as pg_basebackup -Ft writes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size, info.mode = len(payload), 0o600
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            info.mode = 0o700
            if kind in ("symlink", "hardlink"):
                assert isinstance(payload, str)
                info.linkname = payload
            tar.addfile(info)
    return out.getvalue()


def _extract(data: bytes, target: Path) -> int:
    target.mkdir(exist_ok=True)
    return extract_tar(io.BytesIO(data), str(target))


LABEL = ("file", "backup_label", b"START WAL LOCATION: 0/2000028\n")


def test_a_real_tablespace_link_is_made_as_a_link(tmp_path: Path, canary: Canary) -> None:
    data = _tar(LABEL, ("dir", "base", b""), ("file", "base/1", b"page"),
                ("dir", "pg_tblspc", b""), ("symlink", "pg_tblspc/16384", str(canary.dir)))
    assert _extract(data, tmp_path / "pgdata") == 2
    assert os.readlink(tmp_path / "pgdata" / "pg_tblspc" / "16384") == str(canary.dir)
    assert canary.unchanged()


@pytest.mark.parametrize(("members", "named"), [
    ([("dir", "pg_tblspc", b""), ("symlink", "pg_tblspc/16384", "{outside}"),
      ("file", "pg_tblspc/16384/evil", b"through the tablespace link")], "pg_tblspc/16384"),
    ([("dir", "pg_tblspc", b""), ("symlink", "pg_tblspc/16384", "{outside}"),
      ("dir", "pg_tblspc/16384/PG_15", b"")], "pg_tblspc/16384"),
    ([("file", "../outside/canary", b"traversal")], "../outside/canary"),
    ([("file", "{outside}/canary", b"absolute")], "/outside/canary"),
    ([("file", "base//1", b"empty component")], "base//1"),
    ([("symlink", "postgresql.auto.conf", "{outside}/canary")], "postgresql.auto.conf"),
    ([("hardlink", "global/pg_control", "{outside}/canary")], "global/pg_control"),
    ([("file", "backup_label", b"again")], "backup_label"),
])
def test_a_hostile_base_backup_is_refused(tmp_path: Path, canary: Canary,
                                          members: list[tuple[str, str, bytes | str]],
                                          named: str) -> None:
    filled = [(k, n.replace("{outside}", str(canary.dir)),
               p.replace("{outside}", str(canary.dir)) if isinstance(p, str) else p)
              for k, n, p in members]
    with pytest.raises(UnsafeEntry) as caught:
        _extract(_tar(LABEL, *filled), tmp_path / "pgdata")
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)
    assert canary.unchanged()


def test_a_link_already_in_the_target_is_never_written_through(
        tmp_path: Path, canary: Canary) -> None:
    target = tmp_path / "pgdata"
    target.mkdir()
    (target / "base").symlink_to(canary.dir)
    with pytest.raises(UnsafeEntry, match="symbolic link"):
        _extract(_tar(LABEL, ("file", "base/canary", b"through a planted link")), target)
    assert canary.unchanged()


def test_a_member_the_file_system_refuses_is_one_line_not_a_traceback(
        tmp_path: Path) -> None:
    class OneBlob:
        def load_blob(self, blob_id: bytes) -> bytes:
            return _tar(LABEL, ("file", "x" * 300, b"name too long"))

    (tmp_path / "pgdata").mkdir()
    with pytest.raises(MedarkError, match="cannot write the base backup") as caught:
        restore_base(OneBlob(), [b"blob"], str(tmp_path / "pgdata"), 1)
    assert "\n" not in str(caught.value)


def test_names_with_nul_or_dots_are_refused_and_plain_ones_split() -> None:
    for bad in ("", "/", "/etc/passwd", "a/../b", "..", "a\0b", "a//b"):
        with pytest.raises(UnsafeEntry):
            split_name(bad)
    assert split_name("./base/1/") == ["base", "1"]


# ---- xbstreams (medark mysql restore) --------------------------------------------------


def _xb_member(path: str, payload: bytes) -> bytes:
    p = path.encode()
    head = b"XBSTCK01\0P" + struct.pack("<I", len(p)) + p
    body = struct.pack("<QQI", len(payload), 0, zlib.crc32(payload)) + payload
    return head + body + b"XBSTCK01\0E" + struct.pack("<I", len(p)) + p


def _pieces(data: bytes, size: int = 7) -> Iterator[bytes]:
    """Small pieces, so headers straddle them as blobs do."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


MBSTREAM = "/usr/bin/mbstream"
needs_mbstream = pytest.mark.skipif(not os.access(MBSTREAM, os.X_OK),
                                    reason="mbstream (MariaDB) is not installed")


@needs_mbstream
# feed() (sources/mysql/server.py) leaves mbstream's stderr pipe to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", ["../outside/canary", "{outside}/canary", "a//b"])
def test_an_xbstream_with_a_traversal_name_is_refused(tmp_path: Path, canary: Canary,
                                                      name: str) -> None:
    name = name.replace("{outside}", str(canary.dir))
    stream = _xb_member("ibdata1", b"pages" * 100) + _xb_member(name, b"evil") + \
        _xb_member("after", b"never")
    target = tmp_path / "datadir"
    target.mkdir()
    guard = XbstreamGuard(_pieces(stream))
    feed([MBSTREAM, "-x", "-C", str(target)], guard, "mbstream -x")
    with pytest.raises(UnsafeEntry, match="unsafe name"):
        guard.check()
    assert canary.unchanged()
    assert (target / "ibdata1").read_bytes() == b"pages" * 100
    assert not (target / "after").exists()  # the stream ends at the refused entry


@needs_mbstream
def test_without_the_guard_mbstream_skips_a_traversal_name_and_exits_0(
        tmp_path: Path, canary: Canary) -> None:
    """Why the guard: mbstream only logs the bad name, so a restore would go on
    quietly incomplete."""
    target = tmp_path / "datadir"
    target.mkdir()
    done = subprocess.run([MBSTREAM, "-x", "-C", str(target)], check=False,
                          input=_xb_member("../outside/canary", b"evil"), capture_output=True)
    assert done.returncode == 0
    assert canary.unchanged()


def test_a_safe_xbstream_passes_byte_for_byte() -> None:
    stream = b"".join(_xb_member(f"db/t{i}.ibd", bytes([i]) * (i * 97)) for i in range(20))
    guard = XbstreamGuard(_pieces(stream, 13))
    assert b"".join(guard) == stream
    guard.check()


# ---- secret files and spools -----------------------------------------------------------


def test_a_planted_symlink_at_the_password_file_is_refused(tmp_path: Path,
                                                           canary: Canary) -> None:
    planted = tmp_path / "pgdata.medark-password"
    planted.symlink_to(canary.file)
    with pytest.raises(UnsafeEntry, match="symbolic link"):
        write_password_file(str(planted), b"secret", None)
    assert canary.unchanged()
    assert planted.is_symlink()


def test_a_hard_link_at_the_password_file_is_refused(tmp_path: Path, canary: Canary) -> None:
    planted = tmp_path / "pgdata.medark-password"
    os.link(canary.file, planted)
    canary.before = canary._state()  # the link itself changes no byte or mtime
    with pytest.raises(UnsafeEntry, match="hard links"):
        write_password_file(str(planted), b"secret", None)
    assert canary.unchanged()


def test_the_password_file_is_private_and_replaces_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "pgdata.medark-password"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_secret_file(str(path), b"secret\n", (os.getuid(), os.getgid()))
    finally:
        os.umask(old_umask)
    st = path.lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert path.read_bytes() == b"secret\n"
    assert sorted(os.listdir(tmp_path)) == ["pgdata.medark-password"]  # no temp left


def test_a_planted_symlink_at_a_spool_is_refused(tmp_path: Path, canary: Canary) -> None:
    spool = tmp_path / "pgdata.medark-wal"
    spool.symlink_to(canary.dir)
    with pytest.raises(UnsafeEntry, match="symbolic link"):
        private_dir(str(spool))
    assert canary.unchanged()
    private_dir(str(tmp_path / "fresh"))
    private_dir(str(tmp_path / "fresh"))  # an earlier run's directory is kept
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
