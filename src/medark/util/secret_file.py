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

import contextlib
import os
import secrets
import stat
from pathlib import Path

from medark.errors import UnsafeEntry
from medark.util.files import fsync_dir

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, FLAGS, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(Path(directory))
