"""End-to-end tests of `medark key list|add|remove|passwd` and `medark unlock`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli

from medark.repo.locks import HeldLock
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend


def new_password_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"pw-{abs(hash(text))}"
    path.write_text(text + "\n")
    return path


def keys(cli: Cli, password: str = PASSWORD) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = cli("key", "list", "--json", password=password).json()
    return docs


# ---- key ---------------------------------------------------------------------------------


def test_key_list_marks_the_current_key(initialized: Cli) -> None:
    (only,) = keys(initialized)
    assert only["current"] is True
    assert set(only) >= {"id", "userName", "hostName", "created"}
    text = initialized("key", "list").stdout
    assert f"*{str(only['id'])[:8]}" in text and "Created" in text


def test_key_add_from_file_and_from_environment(initialized: Cli, tmp_path: Path) -> None:
    added = initialized("key", "add", "--new-password-file",
                        new_password_file(tmp_path, "second"), "--json").json()
    assert added["message_type"] == "key_added"
    initialized.env["MEDARK_NEW_PASSWORD"] = "third"
    try:
        assert "saved new key" in initialized("key", "add").stdout
    finally:
        del initialized.env["MEDARK_NEW_PASSWORD"]
    initialized.env["MEDARK_NEW_PASSWORD_FILE"] = str(new_password_file(tmp_path, "fourth"))
    try:
        initialized("key", "add")
    finally:
        del initialized.env["MEDARK_NEW_PASSWORD_FILE"]
    listed = keys(initialized, password="second")
    assert len(listed) == 4
    assert [k["id"] for k in listed if k["current"]] == [added["id"]]
    initialized("check", password="third")
    initialized("check", password="fourth")


def test_key_add_without_a_new_password_is_a_usage_error(initialized: Cli) -> None:
    result = initialized("key", "add", check=False)
    assert result.returncode == 2
    assert "new password" in result.stderr and "Traceback" not in result.stderr
    result = initialized("key", "add", "hunter2", check=False)  # never from argv
    assert result.returncode == 2
    assert len(keys(initialized)) == 1


def test_key_remove_refuses_the_current_and_removes_another(
    initialized: Cli, tmp_path: Path
) -> None:
    (current,) = keys(initialized)
    refused = initialized("key", "remove", str(current["id"]), check=False)
    assert refused.returncode == 2 and "in use" in refused.stderr
    other = initialized("key", "add", "--new-password-file",
                        new_password_file(tmp_path, "other"), "--json").json()["id"]
    # From the other key's point of view the first key is not current: it may go.
    removed = initialized("key", "remove", str(current["id"])[:10], password="other")
    assert "removed key" in removed.stdout
    assert [k["id"] for k in keys(initialized, password="other")] == [other]
    assert initialized("key", "list", check=False).returncode == 12  # old password is gone
    missing = initialized("key", "remove", "deadbeef", password="other", check=False)
    assert missing.returncode == 1 and "no key" in missing.stderr


def test_key_passwd_replaces_the_current_key(initialized: Cli, tmp_path: Path) -> None:
    (old,) = keys(initialized)
    changed = initialized("key", "passwd", "--new-password-file",
                          new_password_file(tmp_path, "changed"), "--json").json()
    assert changed["removed"] == old["id"]
    assert initialized("check", check=False).returncode == 12
    (new,) = keys(initialized, password="changed")
    assert new["id"] == changed["id"] != old["id"] and new["current"] is True


def test_damaged_extra_key_does_not_lock_out_the_others(
    initialized: Cli, tmp_path: Path
) -> None:
    other = initialized("key", "add", "--new-password-file",
                        new_password_file(tmp_path, "other"), "--json").json()["id"]
    path = initialized.repo / "keys" / str(other)
    path.write_bytes(path.read_bytes().replace(b'"n": 1024', b'"n": 1025'))
    listed = {k["id"]: k for k in keys(initialized)}
    assert "damaged" in listed[other] and "damaged" not in listed[next(
        k for k in listed if k != other)]
    assert initialized("key", "list", password="other", check=False).returncode == 12


# ---- unlock ------------------------------------------------------------------------------


_DEAD_LOCKER = """
import os, sys
from pathlib import Path
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend
repo = Repository.open(LocalBackend(sys.argv[1]), sys.argv[2].encode(), sync_index=False)
repo.lock(exclusive=True, command="backup", warn=print)
os._exit(0)  # die holding the lock, as after kill -9
"""


@pytest.fixture
def live_lock(initialized: Cli) -> Iterator[HeldLock]:
    """A shared lock held by this (living) test process."""
    repo = Repository.open(LocalBackend(initialized.repo), PASSWORD.encode(), sync_index=False)
    held = repo.lock(exclusive=False, command="backup", warn=print)
    yield held
    held.release()
    repo.close()


def lock_files(cli: Cli) -> list[str]:
    return sorted(p.name for p in (cli.repo / "locks").iterdir())


def test_unlock_removes_a_lock_of_a_dead_process(initialized: Cli) -> None:
    subprocess.run([sys.executable, "-c", _DEAD_LOCKER, str(initialized.repo), PASSWORD],
                   check=True, env=initialized.env)
    (stale,) = lock_files(initialized)
    checked = initialized("check")  # a stale lock does not block, it is reported
    assert "stale" in checked.stderr and "medark unlock" in checked.stderr
    result = initialized("unlock")
    assert "removed stale exclusive lock" in result.stdout
    assert "successfully removed 1 lock" in result.stdout
    assert lock_files(initialized) == []
    assert stale[:8] in result.stdout


def test_unlock_keeps_a_live_lock_unless_remove_all(initialized: Cli, live_lock: HeldLock) -> None:
    (held,) = lock_files(initialized)
    result = initialized("unlock", "--json").json()
    assert result["removed"] == [] and [r["id"] for r in result["remaining"]] == [held]
    assert "kept shared lock" in initialized("unlock").stdout
    assert lock_files(initialized) == [held]
    result = initialized("unlock", "--remove-all")
    assert "successfully removed 1 lock" in result.stdout
    assert lock_files(initialized) == []


def test_unlock_needs_the_password(initialized: Cli) -> None:
    assert initialized("unlock", password="wrong", check=False).returncode == 12
