"""The repository server's access decision (storage/rest_auth.py): argon2id users, fail
closed without an auth file or without full access, bad auth files refused by line."""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

import pytest

from medark.errors import UsageError
from medark.storage.rest_auth import Authenticator, User, auth_line, load_users


@functools.cache
def _line(user: str, password: str, mode: str) -> str:
    return auth_line(user, password, mode)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _users(tmp_path: Path) -> dict[str, User]:
    path = tmp_path / "users"
    path.write_text("# comment\n\n" + _line("backup", "b:token", "append-only") + "\n"
                    + _line("admin", "a-token", "full") + "\n")
    return load_users(path)


def test_without_users_everyone_is_append_only_and_full_access_is_refused() -> None:
    assert Authenticator(None).mode_for(None) == "append-only"
    assert Authenticator(None).mode_for(_basic("admin", "x")) == "append-only"
    with pytest.raises(UsageError, match="full access needs an auth file"):
        Authenticator(None, full_access=True)


def test_full_users_need_full_access(tmp_path: Path) -> None:
    users = _users(tmp_path)
    capped = Authenticator(users)
    assert capped.mode_for(_basic("admin", "a-token")) == "append-only"
    assert capped.capped() == ["admin"]
    full = Authenticator(users, full_access=True)
    assert full.mode_for(_basic("admin", "a-token")) == "full"
    assert full.mode_for(_basic("backup", "b:token")) == "append-only"  # ':' in a password
    assert full.capped() == []


@pytest.mark.parametrize("header", [None, "", "Bearer x", "Basic !!!", "Basic " + "w" * 7,
                                    _basic("admin", "wrong"), _basic("nobody", "a-token"),
                                    _basic("admin", "a-token ")])
def test_wrong_or_missing_credentials(tmp_path: Path, header: str | None) -> None:
    assert Authenticator(_users(tmp_path), full_access=True).mode_for(header) is None


def test_a_verified_password_is_remembered_but_never_stored(tmp_path: Path) -> None:
    auth = Authenticator(_users(tmp_path), full_access=True)
    for _ in range(3):
        assert auth.mode_for(_basic("admin", "a-token")) == "full"
    remembered = auth.__dict__["_verified"]
    assert len(remembered) == 1
    assert all(b"a-token" not in entry for entry in remembered)
    assert auth.mode_for(_basic("admin", "a-token2")) is None
    assert len(remembered) == 1


@pytest.mark.parametrize("text, problem", [
    (f"backup:{hashlib.sha256(b'x').hexdigest()}:append-only",
     "users:1: user backup has an unsalted SHA-256 hash, no longer accepted; make a new "
     "line with `medark serve hash-password"),
    ("backup:$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA:full",
     "users:1: user backup: the hash is not an argon2id hash"),
    ("backup:secret:full", "users:1: user backup: the hash is not an argon2id hash"),
    ("backup:$argon2id$x:root", "users:1: expected user:$argon2id$...:append-only|full"),
    ("just-a-name", "users:1: expected user:$argon2id$"),
])
def test_bad_auth_files_are_refused_by_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "users"
    path.write_text(text + "\n")
    with pytest.raises(UsageError) as refused:
        load_users(path)
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_user_listed_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    line = _line("admin", "a-token", "full")
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(UsageError, match="users:2: user admin is listed twice"):
        load_users(path)
