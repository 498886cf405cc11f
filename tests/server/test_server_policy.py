"""The pure parts of the server: separation of duties and the password policy."""

from __future__ import annotations

import itertools

import pytest

from medark.errors import PasswordPolicyViolation, SeparationOfDuties, UsageError
from medark.server import roles
from medark.server.passwords import PasswordPolicy, hash_password, one_time_password, verify


@pytest.mark.parametrize("pair", list(itertools.combinations(sorted(roles.ADMIN_ROLES), 2)))
def test_two_administrator_roles_are_refused(pair: tuple[str, str]) -> None:
    with pytest.raises(SeparationOfDuties, match="separation of duties"):
        roles.checked_roles([*pair, "viewer"])


def test_roles_are_checked_and_normalised() -> None:
    assert roles.checked_roles(["viewer", "sysadmin", "viewer"]) == ["sysadmin", "viewer"]
    with pytest.raises(UsageError, match="unknown role 'root'"):
        roles.checked_roles(["root"])
    with pytest.raises(UsageError, match="at least one role"):
        roles.checked_roles([])
    assert roles.needs_totp(["operator", "auditadmin"]) and not roles.needs_totp(["viewer"])


@pytest.mark.parametrize(("password", "problem"), [
    ("Short-1", "at least 12 characters"),
    ("alllowercaseletters", "at least 3 of"),
    ("ALLUPPER12345", "at least 3 of"),
    ("Alice-Password-1", "not containing the user name"),
    ("A" * 200 + "a-1" + "b" * 100, "at most 256"),
])
def test_the_password_policy_names_what_is_missing(password: str, problem: str) -> None:
    with pytest.raises(PasswordPolicyViolation, match=problem) as caught:
        PasswordPolicy().check(password, "alice")
    assert password not in str(caught.value)


def test_a_stricter_policy_and_good_passwords() -> None:
    PasswordPolicy().check("Correct-horse-7", "alice")
    with pytest.raises(PasswordPolicyViolation, match="at least 16"):
        PasswordPolicy(min_length=16).check("Correct-horse-7", "alice")
    with pytest.raises(PasswordPolicyViolation, match="at least 4 of"):
        PasswordPolicy(min_classes=4).check("Correcthorse77", "alice")


def test_one_time_passwords_pass_the_strictest_policy_and_hash_with_argon2id() -> None:
    first, second = one_time_password(), one_time_password()
    assert first != second
    PasswordPolicy(min_length=20, min_classes=4).check(first, "sysadmin")
    stored = hash_password(first)
    assert stored.startswith("$argon2id$") and first not in stored
    assert verify(stored, first) and not verify(stored, second)
    assert not verify(None, first) and not verify("not a hash", first)


def test_only_the_test_suites_exact_phrase_makes_new_hashes_cheap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The production cost is RFC 9106's low-memory profile; MEDARK_INSECURE_TEST_KDF's
    phrase (which the test servers get) lowers it, any other value does not."""
    from medark.server.passwords import _hasher

    monkeypatch.delenv("MEDARK_INSECURE_TEST_KDF", raising=False)
    assert "$m=65536,t=3,p=4$" in _hasher().hash("x")
    monkeypatch.setenv("MEDARK_INSECURE_TEST_KDF", "yes")
    assert "$m=65536,t=3,p=4$" in _hasher().hash("x")
    monkeypatch.setenv("MEDARK_INSECURE_TEST_KDF", "i-understand-this-weakens-every-key")
    cheap = _hasher().hash("Correct-horse-7")
    assert cheap.startswith("$argon2id$") and "$m=1024,t=1,p=1$" in cheap
    monkeypatch.delenv("MEDARK_INSECURE_TEST_KDF")
    assert verify(cheap, "Correct-horse-7") and not verify(cheap, "Correct-horse-8")
