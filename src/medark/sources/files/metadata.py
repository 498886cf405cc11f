"""Turning lstat() results into snapshot nodes."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from functools import lru_cache

from medark.snapshot.model import Node


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def node_type(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISBLK(mode):
        return "dev"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None


def node_from_stat(name: str, st: os.stat_result, linktarget: str = "") -> Node:
    kind = node_type(st.st_mode) or "file"
    return Node(
        name=name,
        type=kind,
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        device_id=st.st_dev,
        links=st.st_nlink if kind != "dir" else 1,
        size=st.st_size if kind == "file" else 0,
        linktarget=linktarget,
        rdev=st.st_rdev if kind in ("dev", "chardev") else 0,
    )


def same_file_node(node: Node, st: os.stat_result) -> bool:
    """Whether node_from_stat(node.name, st) of this regular file would give `node` back,
    its content aside: an unchanged file keeps the parent's node instead of an equal new
    one (half the per-file work of a no-change backup, and its directory compares equal
    to the parent's by identity)."""
    return (node.type == "file" and node.mode == st.st_mode and node.size == st.st_size
            and node.mtime_ns == st.st_mtime_ns and node.ctime_ns == st.st_ctime_ns
            and node.inode == st.st_ino and node.device_id == st.st_dev
            and node.links == st.st_nlink and node.uid == st.st_uid
            and node.gid == st.st_gid and node.user == user_name(st.st_uid)
            and node.group == group_name(st.st_gid) and node.subtree is None
            and not (node.linktarget or node.rdev or node.error))


def unchanged(old: Node | None, st: os.stat_result) -> bool:
    """restic's rule: same type, size, mtime, ctime and inode means the content is the same."""
    return (
        old is not None
        and old.type == "file"
        and stat.S_ISREG(st.st_mode)
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )
