"""What every command gets: parsed arguments, the printer, and how to open the repository."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from medark.cli.output import CliProgress, Printer
from medark.config import environment as env
from medark.errors import UsageError, WrongPassword

if TYPE_CHECKING:  # the repository stack, imported when a command opens one: every
    # command module names Context, and `medark CMD --help` must stay light
    from medark.repo.repository import Repository
    from medark.service.session import Limits
    from medark.storage.base import Backend


@dataclass(frozen=True)
class SourcePassword:
    value: bytes
    own: bool
    """False: the main repository's password, tried because no other was given."""


LOCK_FREE_READERS = frozenset({"snapshots", "ls", "find", "diff", "stats", "restore", "dump",
                               "pg restore", "mysql restore", "pg check",
                               "dicom find", "dicom verify"})
"""Commands that only read, which --no-lock lets skip their shared lock (as restic's)."""


@dataclass
class Context:
    args: argparse.Namespace
    out: Printer
    _checked: dict[str, Backend] = field(default_factory=dict, init=False, repr=False)
    """Backends require_repository probed, waiting to be opened."""

    @property
    def location(self) -> str:
        location = self.args.repo or env.REPO.get() or ""
        if not location:
            raise UsageError("no repository given: use --repo or set MEDARK_REPO")
        return str(location)

    @property
    def cache_dir(self) -> Path | None:
        if self.args.no_cache:
            return None
        from medark.service.session import default_cache_dir

        return Path(self.args.cache_dir) if self.args.cache_dir else default_cache_dir()

    def password(self, prompt: str = "enter password for repository: ") -> bytes:
        return read_password(self.args, prompt)

    def repository_password(self) -> bytes:
        """The password of an existing repository: a missing or foreign location is
        reported (exit 10) before any password is read or prompted for."""
        self._require(self.location)
        return self.password()

    def _require(self, location: str) -> None:
        from medark.service.session import require_repository

        self._checked[location] = require_repository(location)

    def _open_checked(self, location: str, password: bytes) -> Repository:
        """Open with the backend _require() probed, when there is one."""
        from medark.service.session import open_repository

        repo = open_repository(location, password, self.cache_dir, self.limits,
                               self._checked.pop(location, None))
        repo.locks.retry_for = self.args.retry_lock
        return repo

    @cached_property
    def limits(self) -> Limits:
        from medark.service.session import Limits

        return Limits(self.args.limit_upload, self.args.limit_download)

    def open(self, password: bytes | None = None) -> Repository:
        """`password`: already read with repository_password()."""
        if password is None:
            password = self.repository_password()
        return self._open_checked(self.location, password)

    def source_password(self, location: str) -> SourcePassword:
        """The password of a second repository (`copy --from-repo`, `init --same-key-as`):
        from --from-password-file/-command or MEDARK_FROM_PASSWORD[_FILE|_COMMAND], else
        the main repository's password. A missing source is reported first (exit 10)."""
        self._require(location)
        command = getattr(self.args, "from_password_command", None) or \
            env.FROM_PASSWORD_COMMAND.get()
        path = getattr(self.args, "from_password_file", None) or env.FROM_PASSWORD_FILE.get()
        if command or path or env.FROM_PASSWORD.name in os.environ:
            return SourcePassword(password_from(
                command, path, env.FROM_PASSWORD.name,
                f"enter password for repository {location}: ",
                "--from-password-file / --from-password-command"), own=True)
        return SourcePassword(self.password(), own=False)

    def open_source(self, location: str, password: SourcePassword | None = None) -> Repository:
        if password is None:
            password = self.source_password(location)
        try:
            return self._open_checked(location, password.value)
        except WrongPassword:
            if password.own:
                raise
            raise WrongPassword(
                f"this password does not open {location}: give --from-password-file, "
                "--from-password-command or MEDARK_FROM_PASSWORD") from None

    @contextmanager
    def repository(self, lock: str | None, command: str) -> Iterator[Repository]:
        """Open, lock ('shared', 'exclusive' or None) and close the repository. With
        --no-lock a reader's shared lock is skipped (a writer's is not: it must lock)."""
        if lock == "shared" and self.args.no_lock and command in LOCK_FREE_READERS:
            lock = None
        from medark.service.session import locked

        repo = self.open()
        try:
            if lock is None:
                yield repo
            else:
                with locked(repo, lock == "exclusive", command, self.out.warn):
                    yield repo
        finally:
            repo.close()

    def progress(self, label: str) -> CliProgress:
        return self.out.progress(label)


def read_password(args: argparse.Namespace, prompt: str) -> bytes:
    """From --password-command, --password-file/MEDARK_PASSWORD_FILE, MEDARK_PASSWORD, or a
    terminal prompt; never from argv itself."""
    return password_from(
        getattr(args, "password_command", None) or env.PASSWORD_COMMAND.get(),
        getattr(args, "password_file", None) or env.PASSWORD_FILE.get(),
        env.PASSWORD.name, prompt, "--password-file / --password-command")


def password_from(command: str | None, path: str | None, variable: str, prompt: str,
                  options: str) -> bytes:
    """The first of: `command`'s output, `path`'s first line, $`variable`, a prompt."""
    if command:
        import subprocess  # only a --password-command needs it

        result = subprocess.run(shlex.split(command), capture_output=True, check=False)
        if result.returncode != 0:
            raise UsageError(f"the password command exited with status {result.returncode}")
        return _first_line(result.stdout)
    if path:
        try:
            return _first_line(Path(path).read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read password file {path}: {exc.strerror}") from None
    password = os.environ.get(variable)  # an empty password is still a password
    if password is not None:
        return password.encode()
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt).encode()
    raise UsageError(
        f"no password given: set {variable}, {variable}_FILE, or use {options}"
    )


def _first_line(data: bytes) -> bytes:
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise UsageError("the password source gave an empty password")
    return line
