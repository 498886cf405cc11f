"""File-tree helpers: sizes, ``du``, copies and restore verification."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_HASH_SAMPLE = 64


@dataclass
class TreeStats:
    files: int
    bytes: int
    sizes: dict[str, int]


def tree_stats(root: Path) -> TreeStats:
    """Regular files below ``root`` (relative path -> size); symlinks are not followed."""
    sizes: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            path = os.path.join(dirpath, fn)
            st = os.lstat(path)
            sizes[os.path.relpath(path, root)] = st.st_size
    return TreeStats(files=len(sizes), bytes=sum(sizes.values()), sizes=sizes)


def du(root: Path) -> tuple[int, int]:
    """(disk usage as ``du -s`` counts it, apparent size as ``du -sb``) in bytes."""
    disk = apparent = 0
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(dirpath, name))
            disk += st.st_blocks * 512
            apparent += st.st_size
    st = os.lstat(root)
    return disk + st.st_blocks * 512, apparent


RECENTLY_DELETED = """On ext4 without a journal (as on some virtual machines' disks) an
inode freed less than 60 s ago, or 360 s while its inode-table block is dirty (and a
restore dirties the blocks it allocates in), is not reused: each file created meanwhile
scans past the freed ones, each a buffer lookup. After 200,000 files were removed, that
scan was most of the next restore's system time (perf: recently_deleted under
ext4_create), a cost no restore onto a new disk pays. So a timed restore does not follow
the removal of a large tree: each keeps its own target, removed at the end."""


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` (keeps mtimes) of ``src`` to a fresh ``dst``."""
    remove(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], check=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def locate_restored(target: Path, source: Path) -> Path | None:
    """Where a tool put ``source`` below ``target``.

    restic and borg recreate the absolute path (``target/<source without leading />``);
    a tool that restores the snapshot's contents directly is accepted as well.
    """
    candidates = [target / str(source).lstrip("/"), target / source.name, target]
    for cand in candidates:
        if cand.is_dir() and any(cand.iterdir()):
            return cand
    return None


@dataclass
class VerifyResult:
    ok: bool
    message: str
    files: int = 0
    bytes: int = 0
    hashed: int = 0


def verify_restore(source: Path, restored: Path | None, seed: int = 1) -> VerifyResult:
    """Compare the file set and sizes in full and the SHA-256 of a sample of files."""
    if restored is None:
        return VerifyResult(False, "nothing restored")
    want = tree_stats(source)
    got = tree_stats(restored)
    missing = sorted(set(want.sizes) - set(got.sizes))
    extra = sorted(set(got.sizes) - set(want.sizes))
    if missing or extra:
        return VerifyResult(
            False,
            f"file set differs: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(extra)} unexpected (e.g. {extra[:3]})",
            got.files,
            got.bytes,
        )
    wrong_size = [p for p, s in want.sizes.items() if got.sizes[p] != s]
    if wrong_size:
        return VerifyResult(
            False,
            f"{len(wrong_size)} files differ in size, e.g. {wrong_size[:3]}",
            got.files,
            got.bytes,
        )
    names = sorted(want.sizes)
    sample = set(random.Random(seed).sample(names, min(_HASH_SAMPLE, len(names))))
    # always include the largest file and the most recently modified ones (the mutation)
    sample.add(max(names, key=lambda p: want.sizes[p]))
    newest = sorted(names, key=lambda p: os.lstat(source / p).st_mtime_ns)[-8:]
    sample.update(newest)
    bad = [p for p in sorted(sample) if _sha256(source / p) != _sha256(restored / p)]
    if bad:
        return VerifyResult(
            False,
            f"{len(bad)} of {len(sample)} sampled files differ, e.g. {bad[:3]}",
            got.files,
            got.bytes,
            len(sample),
        )
    return VerifyResult(
        True,
        f"{got.files} files, {got.bytes} bytes match; {len(sample)} sampled files hash-equal",
        got.files,
        got.bytes,
        len(sample),
    )
