"""Key files: the master key wrapped by a password-derived key (scrypt, parameters stored).

A repository may hold several key files, each opening the same master key with its
own password. Key files are plain JSON (they must be readable before any key is
known); the only secret inside is sealed with the password-derived key.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from medark.config import environment as env
from medark.errors import (
    IntegrityError,
    ObjectNotFound,
    RepositoryCorrupt,
    UsageError,
    WrongPassword,
)
from medark.repo.crypto import (
    MASTER_KEY_LEN,
    SUITES,
    Suite,
    content_name,
    one_shot_open,
    one_shot_seal,
)
from medark.storage.base import Backend
from medark.util import clock

KEYS_PREFIX = "keys/"


KDF_N_MIN = 2**15
"""The least scrypt cost (N, with r=8, p=1) a new key file gets: RFC 7914's interactive
figure and restic's default. Key files record their own N, so the floor applies when a key
is made, never when one is opened."""
KDF_N_MAX = 2**20
"""RFC 7914's figure for file encryption: 1 GiB of memory per unlock, and every command unlocks."""
INSECURE_TEST_KDF = "i-understand-this-weakens-every-key"
"""The exact value MEDARK_INSECURE_TEST_KDF must hold before MEDARK_KDF_N may go below the
floor: a test suite's switch, long and explicit so that no production host sets it by accident."""


@dataclass(frozen=True)
class KdfParams:
    n: int = KDF_N_MIN
    r: int = 8
    p: int = 1

    @classmethod
    def from_env(cls) -> KdfParams:
        """The cost for a new key: MEDARK_KDF_N may raise it up to KDF_N_MAX; lowering it
        (test suites, where every test makes keys) also needs MEDARK_INSECURE_TEST_KDF."""
        raw = (env.KDF_N.get() or "").strip()
        if not raw:
            return cls()
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 2 or n & (n - 1) or n > KDF_N_MAX:
            raise UsageError(f"MEDARK_KDF_N={raw!r} is not a power of two from {KDF_N_MIN} "
                             f"to {KDF_N_MAX}")
        if n < KDF_N_MIN and env.INSECURE_TEST_KDF.get() != INSECURE_TEST_KDF:
            raise UsageError(f"MEDARK_KDF_N={n} is below the minimum scrypt cost {KDF_N_MIN}; "
                             "unset it (the default is the minimum) or raise it")
        return cls(n=n)


@dataclass(frozen=True)
class KeyInfo:
    id: str
    created: str
    username: str
    hostname: str
    suite: str


def _derive(password: bytes, salt: bytes, params: KdfParams, length: int) -> bytes:
    return Scrypt(salt=salt, length=length, n=params.n, r=params.r, p=params.p).derive(password)


def make_key_file(
    suite: Suite, master_key: bytes, password: bytes, params: KdfParams | None = None
) -> bytes:
    params = params or KdfParams.from_env()
    salt = os.urandom(32)
    wrapping = _derive(password, salt, params, suite.key_len)
    doc = {
        "version": 1,
        "created": clock.format_time(clock.now()),
        "username": getpass.getuser(),
        "hostname": os.uname().nodename,
        "suite": suite.name,
        "kdf": {"name": "scrypt", "n": params.n, "r": params.r, "p": params.p},
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(one_shot_seal(suite, wrapping, master_key)).decode(),
    }
    return json.dumps(doc, indent=2).encode()


def _parse(raw: bytes, name: str) -> dict[str, object]:
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("unsupported key file version")
        return doc
    except (ValueError, RecursionError) as exc:
        raise RepositoryCorrupt(f"key file {name} is damaged: {exc}") from None


KDF_WORK_MAX = KDF_N_MAX * 8
"""The most scrypt work (N·r·p; memory is 128·N·r bytes) a key file may ask for when it
is opened: the heaviest key Medark makes (N=2^20, r=8, p=1, 1 GiB). A key file is plain
JSON that anyone who can write to the repository can plant, and every unlock tries every
key file: one asking for N=2^30 would take 1 TiB, or hours, at each command."""


def _stored_params(kdf: dict[str, Any], name: str) -> KdfParams:
    params = KdfParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
    if min(params.n, params.r, params.p) < 1 or params.n * params.r * params.p > KDF_WORK_MAX:
        raise RepositoryCorrupt(f"key file {name} is damaged: it asks for scrypt cost "
                                f"N={params.n} r={params.r} p={params.p}, beyond any key "
                                f"Medark makes (N·r·p at most {KDF_WORK_MAX})")
    return params


def open_key_file(raw: bytes, name: str, password: bytes) -> tuple[Suite, bytes]:
    """(suite, master key), or WrongPassword when this key does not open with `password`."""
    doc = _parse(raw, name)
    try:
        suite = SUITES[str(doc["suite"])]
        kdf = doc["kdf"]
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise RepositoryCorrupt(f"key file {name} names an unknown KDF")
        params = _stored_params(kdf, name)
        salt = base64.b64decode(str(doc["salt"]), validate=True)
        sealed = base64.b64decode(str(doc["data"]), validate=True)
        wrapping = _derive(password, salt, params, suite.key_len)
    except (ValueError, KeyError, TypeError, OverflowError, MemoryError) as exc:
        # A damaged field (scrypt rejects a cost that is not a power of two, etc.).
        raise RepositoryCorrupt(f"key file {name} is damaged: {exc!r}") from None
    try:
        master = one_shot_open(suite, wrapping, sealed)
    except IntegrityError:
        raise WrongPassword("wrong password or no key found") from None
    if len(master) != MASTER_KEY_LEN:
        raise RepositoryCorrupt(f"key file {name} holds a master key of the wrong length")
    return suite, master


class KeyStore:
    """Lists, adds and removes key files in a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def names(self) -> list[str]:
        return sorted(info.name for info in self.backend.list(KEYS_PREFIX))

    def add(self, suite: Suite, master_key: bytes, password: bytes) -> str:
        raw = make_key_file(suite, master_key, password)
        key_id = content_name(raw)
        self.backend.save(KEYS_PREFIX + key_id, raw)
        return key_id

    def unlock(self, password: bytes, hint: str | None = None) -> tuple[str, Suite, bytes]:
        """Try every key (the hinted one first); (key id, suite, master key)."""
        names = self.names()
        if not names:
            raise RepositoryCorrupt("the repository has no key files")
        if hint:
            names.sort(key=lambda n: not n.endswith("/" + hint))
        damaged: list[str] = []
        for name in names:
            try:
                raw = self.backend.load(name)
            except ObjectNotFound:
                continue
            if content_name(raw) != name.removeprefix(KEYS_PREFIX):
                damaged.append(name)  # still try it: the sealed key is authenticated
            try:
                suite, master = open_key_file(raw, name, password)
            except WrongPassword:
                continue
            except RepositoryCorrupt:
                if name not in damaged:
                    damaged.append(name)
                continue  # one damaged key file must not lock out the others
            return name.removeprefix(KEYS_PREFIX), suite, master
        if damaged:
            raise WrongPassword(
                "wrong password or no key found (damaged key file: "
                + ", ".join(damaged) + ")"
            )
        raise WrongPassword("wrong password or no key found")

    def infos(self) -> Iterator[KeyInfo]:
        for name in self.names():
            doc = _parse(self.backend.load(name), name)
            yield KeyInfo(
                id=name.removeprefix(KEYS_PREFIX),
                created=str(doc.get("created", "")),
                username=str(doc.get("username", "")),
                hostname=str(doc.get("hostname", "")),
                suite=str(doc.get("suite", "")),
            )

    def remove(self, key_id: str) -> None:
        self.backend.remove(KEYS_PREFIX + key_id)


def created_time(info: KeyInfo) -> datetime | None:
    return clock.parse_time(info.created) if info.created else None


def verify_key_file(name: str, raw: bytes) -> None:
    """RepositoryCorrupt unless `raw` is an intact key file stored under `name` (check)."""
    if content_name(raw) != name.rsplit("/", 1)[-1]:
        raise RepositoryCorrupt(f"key file {name} is damaged: content does not match its name")
    doc = _parse(raw, name)
    kdf = doc.get("kdf")
    try:
        if str(doc["suite"]) not in SUITES:
            raise ValueError(f"unknown cipher suite {doc['suite']!r}")
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise ValueError("unknown KDF")
        _stored_params(kdf, name)
        base64.b64decode(str(doc["salt"]), validate=True)
        base64.b64decode(str(doc["data"]), validate=True)
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise RepositoryCorrupt(f"key file {name} is damaged: {exc}") from None


def key_info(name: str, raw: bytes) -> KeyInfo:
    """The public fields of one key file (RepositoryCorrupt when it does not parse)."""
    doc = _parse(raw, name)
    return KeyInfo(
        id=name.removeprefix(KEYS_PREFIX),
        created=str(doc.get("created", "")),
        username=str(doc.get("username", "")),
        hostname=str(doc.get("hostname", "")),
        suite=str(doc.get("suite", "")),
    )
