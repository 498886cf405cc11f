"""TOTP secrets encrypted at rest: AES-256-GCM under the server key, the user's id as
associated data (a ciphertext copied onto another user's row does not decrypt).

The key is 32 random bytes in a 0600 file, made and read by the audit trail's key-file
helpers: MEDARK_SERVER_KEY_FILE, else beside the audit key (`<catalog>.server-key` beside
a SQLite catalog's `<catalog>.audit-key`; `audit.server-key` beside a
MEDARK_AUDIT_KEY_FILE `audit.key`). Every server process of one catalog needs the same
file; without it the administrators cannot sign in, so back it up with the audit key.

Stored form: the URL-safe base64 (no padding) of nonce (12 bytes), ciphertext of the
20-byte secret and tag (16): 64 characters, the users.totp_secret column's width. A
secret of 32 base32 characters is a plain one from before encryption: `seal_plain`
encrypts those at start-up.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from medark.catalog.audit_key import create_key, default_key_file, read_key
from medark.catalog.audit_trail import AuditSettings
from medark.catalog.store import Catalog
from medark.errors import CatalogError
from medark.server.db import transaction
from medark.server.tables import User

KEY_FILE_ENV = "MEDARK_SERVER_KEY_FILE"
SEALED_LENGTH = 64
NONCE = 12


def key_file(catalog_url: str) -> Path:
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        return Path(named)
    audit_key = AuditSettings.from_environment().key_file or default_key_file(catalog_url)
    stem = audit_key.name.removesuffix(".audit-key").removesuffix(".key")
    return audit_key.with_name(stem + ".server-key")


def _sealed(stored: str) -> bool:
    return len(stored) == SEALED_LENGTH


@dataclass(frozen=True)
class SecretBox:
    key: bytes
    path: Path

    def seal(self, user_id: int, secret: str) -> str:
        raw = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
        nonce = secrets.token_bytes(NONCE)
        box = nonce + AESGCM(self.key[:32]).encrypt(nonce, raw, _aad(user_id))
        sealed = base64.urlsafe_b64encode(box).decode("ascii").rstrip("=")
        if len(sealed) != SEALED_LENGTH:
            raise ValueError("a TOTP secret is 20 bytes (32 base32 characters)")
        return sealed

    def open(self, user_id: int, stored: str) -> str:
        """The base32 secret; CatalogError (one line, naming the key file) when the key
        does not decrypt it."""
        if not _sealed(stored):
            raise CatalogError(f"user {user_id}'s TOTP secret is not encrypted; restart the "
                               "server to encrypt it")
        try:
            box = base64.urlsafe_b64decode(stored + "=" * (-len(stored) % 4))
            raw = AESGCM(self.key[:32]).decrypt(box[:NONCE], box[NONCE:], _aad(user_id))
        except (InvalidTag, binascii.Error, ValueError):
            raise CatalogError(f"server key {self.path} does not decrypt the stored TOTP "
                               f"secrets (user {user_id}'s): a different key than the one "
                               "that encrypted them, or a secret moved from another "
                               "user's row") from None
        return base64.b32encode(raw).decode("ascii").rstrip("=")


def _aad(user_id: int) -> bytes:
    return f"medark totp secret of user {user_id}".encode("ascii")


def load(catalog: Catalog) -> SecretBox:
    """The server key, checked against the stored secrets; created when missing only
    while no secret is encrypted (else the secrets would be lost silently). Plain
    secrets from before encryption are encrypted here, in one transaction."""
    path = key_file(catalog.url)
    with transaction(catalog) as session:
        stored = [(uid, s) for uid, s in session.execute(
            select(User.id, User.totp_secret).where(User.totp_secret.is_not(None)))]
    sealed = [(uid, s) for uid, s in stored if s and _sealed(s)]
    try:
        if path.exists():
            key = read_key(path)
        elif sealed:
            raise CatalogError(f"server key {path} is missing but {len(sealed)} TOTP "
                               f"secret(s) are encrypted under it: put it back, or name "
                               f"it with {KEY_FILE_ENV}")
        else:
            key = create_key(path)
    except CatalogError as exc:  # the helpers name the file an "audit key"
        raise CatalogError(str(exc).replace("audit key", "server key", 1)) from None
    box = SecretBox(key, path)
    if sealed:
        box.open(*sealed[0])
    if len(sealed) < len(stored):
        seal_plain(catalog, box)
    return box


def seal_plain(catalog: Catalog, box: SecretBox) -> int:
    """Encrypt the secrets stored in plain text (from before encryption); how many."""
    count = 0
    with transaction(catalog) as session:
        for user in session.scalars(select(User).where(User.totp_secret.is_not(None))
                                    .with_for_update()):
            if user.totp_secret and not _sealed(user.totp_secret):
                try:
                    user.totp_secret = box.seal(user.id, user.totp_secret)
                except (ValueError, binascii.Error):
                    raise CatalogError(f"user {user.name}'s stored TOTP secret is not "
                                       "base32; reset its second factor") from None
                count += 1
    return count
