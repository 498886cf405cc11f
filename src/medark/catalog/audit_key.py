"""The audit trail's signing key on disk: where it lives, reading it (refusing a file
others may read) and creating it atomically. Split from audit_trail.py, which signs
with it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from medark.errors import CatalogError

KEY_BYTES = 32


def default_key_file(catalog_url: str) -> Path:
    """Beside a SQLite catalog; for PostgreSQL in the user's state directory (a
    regional center gives every server process the same file: MEDARK_AUDIT_KEY_FILE)."""
    if catalog_url.startswith("sqlite:///"):
        path = catalog_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            return Path(path + ".audit-key")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    tail = catalog_url.split("://", 1)[-1].rpartition("@")[2]
    name = "".join(c if c.isalnum() or c in "-." else "_" for c in tail)[:120]
    return Path(state) / "medark" / "audit-keys" / f"{name}.key"


def read_key(path: Path) -> bytes:
    """The key in `path` (hex), refusing a file others may read."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise CatalogError(f"audit key {path}: readable by others (mode "
                               f"{st.st_mode & 0o777:o}); chmod 600 it")
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a key"
        raise CatalogError(f"audit key {path}: {reason}") from None
    if len(key) < KEY_BYTES:
        raise CatalogError(f"audit key {path}: shorter than {KEY_BYTES} bytes")
    return key


def create_key(path: Path) -> bytes:
    """A new random key at `path`, mode 0600, unless one appeared meanwhile (another
    process): written aside, then linked in, so nobody reads half a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    return read_key(path)
