"""One rooted exception tree. Each class carries its CLI exit code and a stable API code.

Only cli/main.py turns these into exit codes; everything else raises them.
"""

from __future__ import annotations


class MedarkError(Exception):
    """Base of every error Medark reports to a user: one line, what failed, what to do."""

    exit_code = 1
    code = "error"
    in_output = False
    """True when the command already put the failure into its --json document."""


class UsageError(MedarkError):
    """The command line or an input given by the user is wrong."""

    code = "usage"


class SourceError(MedarkError):
    """A path to back up does not exist or cannot be read at all."""

    code = "source"


class RepositoryNotFound(MedarkError):
    """No repository at the given location (or not a Medark repository)."""

    exit_code = 10
    code = "repo_not_found"


class RepositoryLocked(MedarkError):
    """Another process holds a conflicting lock."""

    exit_code = 11
    code = "repo_locked"


class WrongPassword(MedarkError):
    """No key in the repository opens with the given password."""

    exit_code = 12
    code = "wrong_password"


class RepositoryCorrupt(MedarkError):
    """Stored data failed verification (hash, authentication tag or structure)."""

    code = "repo_corrupt"


class IntegrityError(RepositoryCorrupt):
    """One stored object failed authentication or its content hash."""

    code = "integrity"


class ObjectNotFound(MedarkError):
    """A named object (snapshot, blob, file) does not exist."""

    code = "not_found"


class AmbiguousId(UsageError):
    """An id prefix matches more than one object."""

    code = "ambiguous_id"


class BackendError(MedarkError):
    """Storage failed. `transient` says whether retrying may help."""

    code = "backend"

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class AlreadyExists(BackendError):
    """An object that exists is never rewritten."""

    code = "exists"


class NoSpace(BackendError):
    """The target device is full."""

    code = "no_space"


class PartialBackup(MedarkError):
    """The snapshot was written but some source files could not be read."""

    exit_code = 3
    code = "partial"


class CommandFailed(MedarkError):
    """A command whose output was being stored exited non-zero."""

    code = "command_failed"


class Interrupted(MedarkError):
    """The user interrupted the command (Ctrl-C)."""

    exit_code = 130
    code = "interrupted"
