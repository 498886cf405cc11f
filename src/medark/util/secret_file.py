"""Files that hold a secret (a repository password for restore_command, the demo's
password): made so that nobody else can read them, and so that a link planted at the
path cannot turn the write against another file.

The secret is written to a new file under a random name in the same directory, created
with O_EXCL|O_NOFOLLOW; its mode and owner are set on the descriptor (never by path,
which would follow a link), then it is renamed into place. A rename replaces a link
itself and never writes through it. What is already at the path decides: nothing, or a
regular file with no other hard link (ours, from an earlier run) is replaced; a
symbolic link or anything else is refused, so its target stays as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from medark.errors import UnsafeEntry
from medark.util.files import atomic_write


def write_secret_file(path: str, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """`data` at `path`, mode 0600, owned by `owner` (uid, gid) when given."""
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else \
                "a file with other hard links" if stat.S_ISREG(st.st_mode) else \
                "not a regular file"
            raise UnsafeEntry(f"{path} is already there and is {kind}; refusing to write a "
                              "secret to it (remove it, or choose another path)")
    atomic_write(Path(path), data, 0o600, owner=owner)
