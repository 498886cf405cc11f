"""Password hashing (argon2id) and the password policy.

The policy's defaults follow 等保 level 3 practice: at least 12 characters from at least
three of lower case, upper case, digits and other characters, and not containing the
user name. Messages name what is missing, never the password.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medark.config import environment as env
from medark.errors import PasswordPolicyViolation
from medark.repo.keys import INSECURE_TEST_KDF

MAX_LENGTH = 256
"""Longer passwords are refused: hashing unbounded input is a denial of service."""


def _hasher() -> PasswordHasher:
    """argon2id with RFC 9106's low-memory profile (3 passes over 64 MiB). The test
    suite's switch, MEDARK_INSECURE_TEST_KDF's exact phrase (docs/operations.md), lowers
    new hashes to one pass over 1 MiB: its tests sign users in hundreds of times, at up
    to seconds each on a loaded machine. Hashes record their own cost, so verifying is
    the same either way."""
    if env.INSECURE_TEST_KDF.get() == INSECURE_TEST_KDF:
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


_HASHER = _hasher()
_DUMMY = _HASHER.hash("medark: equalises the time of a login for an unknown user")


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12
    min_classes: int = 3

    def problems(self, password: str, user: str) -> list[str]:
        found = []
        if len(password) < self.min_length:
            found.append(f"at least {self.min_length} characters")
        if len(password) > MAX_LENGTH:
            found.append(f"at most {MAX_LENGTH} characters")
        classes = sum(any(test(c) for c in password) for test in
                      (str.islower, str.isupper, str.isdigit,
                       lambda c: not c.isalnum()))
        if classes < self.min_classes:
            found.append(f"characters of at least {self.min_classes} of: lower case, "
                         "upper case, digits, others")
        if user and user.lower() in password.lower():
            found.append("not containing the user name")
        return found

    def check(self, password: str, user: str) -> None:
        found = self.problems(password, user)
        if found:
            raise PasswordPolicyViolation("the password does not meet the policy: needs "
                                          + "; ".join(found))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash. With no hash (an unknown user) a
    dummy hash is checked, so the answer takes as long either way."""
    try:
        return _HASHER.verify(stored or _DUMMY, password[:MAX_LENGTH + 1]) and bool(stored)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def one_time_password() -> str:
    """20 characters from all four classes (about 110 bits), no look-alike characters:
    read from a terminal and typed once."""
    alphabet = [c for c in string.ascii_letters + string.digits + "-_.+=" if c not in "lI1O0o"]
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(20))
        if not PasswordPolicy(12, 4).problems(candidate, ""):
            return candidate
