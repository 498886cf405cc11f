"""Cipher suites and the sealing of every stored byte.

A suite names an AEAD, a keyed content hash for blob ids and a hash for key
derivation. Sealed objects never reuse a (key, nonce) pair: each writer process
draws a random 128-bit session id, derives a session key from the master key with
HKDF(session id), and numbers its messages with a 96-bit counter used as the nonce.

Sealed layout: version (1) | session id (16) | nonce (12) | ciphertext | tag (16).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medark.errors import IntegrityError, UsageError
from medark.repo.suites import DEFAULT_SUITE as DEFAULT_SUITE  # where it was named

SEAL_VERSION = 1
SESSION_ID_LEN = 16
NONCE_LEN = 12
TAG_LEN = 16
SEAL_OVERHEAD = 1 + SESSION_ID_LEN + NONCE_LEN + TAG_LEN
MASTER_KEY_LEN = 64  # 32 bytes for encryption, 32 bytes for the blob-id key


class Aead(Protocol):
    def encrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes: ...

    def decrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes: ...


class _Sm4Gcm:
    """SM4-GCM through the cipher API, shaped like the AEAD classes (ciphertext || tag)."""

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.SM4(key)

    def encrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes:
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if associated_data:
            encryptor.authenticate_additional_data(associated_data)
        body = encryptor.update(data) + encryptor.finalize()
        return body + encryptor.tag

    def decrypt(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None
    ) -> bytes:
        if len(data) < TAG_LEN:
            raise InvalidTag()
        body, tag = data[:-TAG_LEN], bytes(data[-TAG_LEN:])
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(body) + decryptor.finalize()


@dataclass(frozen=True)
class Suite:
    name: str
    key_len: int
    description: str

    def aead(self, key: bytes) -> Aead:
        if self.name == "aes-256-gcm":
            return AESGCM(key)
        if self.name == "chacha20-poly1305":
            return ChaCha20Poly1305(key)
        return _Sm4Gcm(key)

    def kdf_hash(self) -> hashes.HashAlgorithm:
        return hashes.SM3() if self.name == "sm4-gcm" else hashes.SHA256()

    def id_hash(self, key: bytes, data: bytes | memoryview) -> bytes:
        """Keyed content hash of plaintext: ids reveal nothing without the key."""
        if self.name == "sm4-gcm":
            return _hmac_sm3(key, data)
        digest: bytes = blake3.blake3(data, key=key, max_threads=1).digest()
        return digest


def _hmac_sm3(key: bytes, data: bytes | memoryview) -> bytes:
    """HMAC-SM3 via OpenSSL's hashlib where it has SM3, else via cryptography."""
    if _HASHLIB_SM3:
        return hmac.new(key, data, "sm3").digest()
    mac = chmac.HMAC(key, hashes.SM3())
    mac.update(bytes(data))
    return mac.finalize()


def _hashlib_has_sm3() -> bool:
    try:
        hashlib.new("sm3")
    except ValueError:
        return False
    return True


_HASHLIB_SM3 = _hashlib_has_sm3()

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("aes-256-gcm", 32, "AES-256-GCM, BLAKE3-keyed ids (default)"),
        Suite("chacha20-poly1305", 32, "ChaCha20-Poly1305, BLAKE3-keyed ids"),
        Suite("sm4-gcm", 16, "SM4-GCM, HMAC-SM3 ids, HKDF-SM3 (GB/T national cryptography)"),
    )
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        names = ", ".join(SUITES)
        raise UsageError(f"unknown cipher {name!r}: choose one of {names}") from None


def one_shot_seal(suite: Suite, key: bytes, plaintext: bytes) -> bytes:
    """Seal with a key used only once (e.g. derived from a password with a fresh salt)."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + suite.aead(key).encrypt(nonce, plaintext, None)


def one_shot_open(suite: Suite, key: bytes, sealed: bytes) -> bytes:
    if len(sealed) < NONCE_LEN + TAG_LEN:  # the AEADs raise ValueError for a short nonce
        raise IntegrityError("authentication failed (too short to be sealed)")
    try:
        return suite.aead(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], None)
    except InvalidTag:
        raise IntegrityError("authentication failed") from None


class Crypto:
    """Seals and opens repository objects with the master key; computes blob ids."""

    _MAX_CACHED_SESSIONS = 256

    def __init__(self, suite: Suite, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_LEN:
            raise ValueError("master key has the wrong length")
        self.suite = suite
        self._enc_master = master_key[:32]
        self._id_key = master_key[32:]
        self._session_id = os.urandom(SESSION_ID_LEN)
        self._session_aead = suite.aead(self._derive(self._session_id))
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()
        self._readers: OrderedDict[bytes, Aead] = OrderedDict()
        self._readers_lock = threading.Lock()
        self._last_reader: tuple[bytes, Aead] = (self._session_id, self._session_aead)
        """The session opened last: a restore opens thousands of blobs of one session in
        a row, and this needs neither the lock nor the LRU's reordering."""

    @property
    def master_key(self) -> bytes:
        """The full master key, for wrapping it with another password (`key add`)."""
        return self._enc_master + self._id_key

    def _derive(self, session_id: bytes) -> bytes:
        hkdf = HKDF(
            algorithm=self.suite.kdf_hash(),
            length=self.suite.key_len,
            salt=None,
            info=b"medark-session-v1" + session_id,
        )
        return hkdf.derive(self._enc_master)

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return self.suite.id_hash(self._id_key, data)

    def seal(self, plaintext: bytes | memoryview) -> bytes:
        with self._counter_lock:
            counter = next(self._counter)
        nonce = counter.to_bytes(NONCE_LEN, "big")
        body = self._session_aead.encrypt(nonce, plaintext, None)
        return b"".join((bytes([SEAL_VERSION]), self._session_id, nonce, body))

    def _reader(self, session_id: bytes) -> Aead:
        last_id, last = self._last_reader  # one tuple, read and replaced atomically
        if session_id == last_id:
            return last
        if session_id == self._session_id:
            return self._session_aead
        with self._readers_lock:
            aead = self._readers.get(session_id)
            if aead is not None:
                self._readers.move_to_end(session_id)
        if aead is None:
            aead = self.suite.aead(self._derive(session_id))
            with self._readers_lock:
                self._readers[session_id] = aead
                if len(self._readers) > self._MAX_CACHED_SESSIONS:
                    self._readers.popitem(last=False)
        self._last_reader = (session_id, aead)
        return aead

    def open(self, sealed: bytes | memoryview) -> bytes:
        view = memoryview(sealed)
        if len(view) < SEAL_OVERHEAD or view[0] != SEAL_VERSION:
            raise IntegrityError("not a sealed object (bad header or too short)")
        session_id = bytes(view[1 : 1 + SESSION_ID_LEN])
        nonce_end = 1 + SESSION_ID_LEN + NONCE_LEN
        nonce = bytes(view[1 + SESSION_ID_LEN : nonce_end])
        try:
            return self._reader(session_id).decrypt(nonce, view[nonce_end:], None)
        except InvalidTag:
            raise IntegrityError("authentication failed (data damaged or wrong key)") from None


def content_name(data: bytes | bytearray) -> str:
    """Storage name of an unpacked object or pack: SHA-256 of the stored bytes."""
    return hashlib.sha256(data).hexdigest()
