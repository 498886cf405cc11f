"""Who may do what on `medark serve`: the auth file, argon2id password hashes, and the
access decision for each request.

The auth file has one `user:$argon2id$...:append-only|full` line per user. Hashes are
argon2id (salted and memory-hard, argon2-cffi), so a copied auth file does not hand out
the passwords. Old unsalted SHA-256 lines are refused with a line saying how to rehash,
never accepted in the meantime.

Fail closed: without an auth file every client is append-only; a `full` user gets full
access only when the server was started with full access allowed (`--full-access`).

An argon2 verification costs about a tenth of a second and 64 MiB, so a verified
(user, password) is remembered for the life of the process as an HMAC under a random
per-process key (never the password), and at most `PARALLEL_VERIFICATIONS` run at once:
wrong passwords cannot make the server allocate without bound.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

from medark.errors import UsageError

MODES = ("append-only", "full")
APPEND_ONLY, FULL = MODES
PARALLEL_VERIFICATIONS = 2
CACHE_LIMIT = 1024
REHASH_HINT = ("make a new line with `medark serve hash-password --user NAME --mode MODE` "
               "(it reads the password from the terminal or standard input)")
_OLD_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_USER = re.compile(r"[^\s:]+")


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    mode: str


def hash_password(password: str) -> str:
    """An argon2id hash with argon2-cffi's defaults (RFC 9106's low-memory profile)."""
    return PasswordHasher().hash(password)


def auth_line(user: str, password: str, mode: str) -> str:
    """A ready auth-file line."""
    if not _USER.fullmatch(user):
        raise UsageError(f"user name {user!r}: no spaces or colons, not empty")
    if mode not in MODES:
        raise UsageError(f"mode {mode!r}: expected append-only or full")
    return f"{user}:{hash_password(password)}:{mode}"


def load_users(path: Path) -> dict[str, User]:
    """The auth file's users; any bad line stops the server with `file:line: problem`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read auth file {path}: {reason}") from None
    users: dict[str, User] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = line.split(":")
        if len(parts) != 3 or not _USER.fullmatch(parts[0]) or parts[2] not in MODES:
            raise UsageError(f"{where}: expected user:$argon2id$...:append-only|full")
        name, hashed, mode = parts
        if _OLD_SHA256.fullmatch(hashed):
            raise UsageError(f"{where}: user {name} has an unsalted SHA-256 hash, no longer "
                             f"accepted; {REHASH_HINT}")
        try:
            kind = extract_parameters(hashed).type
        except InvalidHashError:
            kind = None
        if kind is not Type.ID:
            raise UsageError(f"{where}: user {name}: the hash is not an argon2id hash; "
                             f"{REHASH_HINT}")
        if name in users:
            raise UsageError(f"{where}: user {name} is listed twice")
        users[name] = User(name, hashed, mode)
    return users


class Authenticator:
    """The mode of each request's caller (None: credentials missing or wrong)."""

    def __init__(self, users: dict[str, User] | None, full_access: bool = False) -> None:
        if full_access and users is None:
            raise UsageError("full access needs an auth file (--auth-file): it lets a client "
                             "delete backups, so give it only to a named user")
        self.users = users
        self.full_access = full_access
        self._hasher = PasswordHasher()
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(PARALLEL_VERIFICATIONS)
        self._decoy = ""

    def effective_mode(self, user: User) -> str:
        return FULL if user.mode == FULL and self.full_access else APPEND_ONLY

    def capped(self) -> list[str]:
        """`full` users served append-only because full access was not allowed."""
        return sorted(u.name for u in (self.users or {}).values()
                      if u.mode == FULL and not self.full_access)

    def mode_for(self, authorization: str | None) -> str | None:
        if self.users is None:
            return APPEND_ONLY
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        name, _, password = decoded.partition(":")
        user = self.users.get(name)
        digest = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            known = user is not None and digest in self._verified
        if known and user is not None:
            return self.effective_mode(user)
        if not self._verify(user.password_hash if user else self._decoy_hash(), password) \
                or user is None:
            return None
        with self._lock:
            if len(self._verified) >= CACHE_LIMIT:
                self._verified.clear()
            self._verified.add(digest)
        return self.effective_mode(user)

    def _decoy_hash(self) -> str:
        """What an unknown user is checked against, so that timing does not tell who
        exists (made on first use: a server nobody probes never pays for it)."""
        with self._lock:
            if not self._decoy:
                self._decoy = self._hasher.hash(secrets.token_hex(16))
            return self._decoy

    def _verify(self, password_hash: str, password: str) -> bool:
        with self._slots:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False
