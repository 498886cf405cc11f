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

    def field_problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) pairs the API's 422 lists as its `problems`; none
        unless a subclass knows them (server/configs.py's ConfigRejected)."""
        return []


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


class ObjectLocked(BackendError):
    """The object is under retention (Object Lock) or a legal hold and cannot be deleted
    or overwritten yet; `until` is when its retention ends (None: unknown or a legal hold);
    `reason` says why when it is neither (an append-only repository server)."""

    code = "object_locked"

    def __init__(self, message: str, until: object = None, reason: str = "") -> None:
        super().__init__(message)
        self.until = until
        self.reason = reason


class LockUnavailable(MedarkError):
    """A lock period or legal hold was asked for, but the storage cannot lock objects
    (a local directory, or an S3 bucket created without Object Lock)."""

    exit_code = 13
    code = "object_lock_unavailable"


class ResidencyViolation(MedarkError):
    """Data would be stored at a target not recorded inside mainland China
    (docs/compliance.md#data-residency; policy/residency.py), and the command was told to
    refuse that."""

    exit_code = 14
    code = "residency"


class ConfigInvalid(MedarkError):
    """The configuration file cannot be read or breaks its schema; the message lists every
    problem as file:line: key: what is wrong."""

    exit_code = 15
    code = "config_invalid"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class CatalogError(MedarkError):
    """The job catalog (SQLite file or PostgreSQL) cannot be opened, migrated or written."""

    exit_code = 16
    code = "catalog"


class ComplianceFailed(MedarkError):
    """`medark compliance`: at least one "must" requirement fails (the table says which)."""

    exit_code = 17
    code = "compliance_failed"


class NotInstalled(MedarkError):
    """An optional part of Medark the command needs is not installed (the report
    renderer: `pip install 'medark[report]'`); the message says what to install."""

    exit_code = 18
    code = "not_installed"


class UnsafeEntry(MedarkError):
    """A restore (or dump) met an entry that would land outside its target: an absolute
    name, a `..` or empty component, a name repeated in one directory, a write through a
    symbolic link, a hard link to something not restored by this run; or a path Medark
    creates a secret at is already taken by a link or another file. Nothing outside the
    target was written (docs/design.md, "Restores stay inside their target")."""

    exit_code = 19
    code = "unsafe_entry"


class PartialBackup(MedarkError):
    """The snapshot was written but some source files could not be read."""

    exit_code = 3
    code = "partial"


class SuspiciousBackup(MedarkError):
    """The snapshot was written, but its change looks like ransomware (policy/anomaly.py)."""

    exit_code = 4
    code = "suspicious"


class CommandFailed(MedarkError):
    """A command whose output was being stored exited non-zero."""

    code = "command_failed"


class Interrupted(MedarkError):
    """The user interrupted the command (Ctrl-C)."""

    exit_code = 130
    code = "interrupted"


class DatabaseUnavailable(MedarkError):
    """The database server cannot be reached or refused the connection (wrong DSN,
    server down, authentication failed)."""

    exit_code = 20
    code = "db_unavailable"


class DatabasePermission(MedarkError):
    """The database role lacks a privilege the command needs (replication, superuser)."""

    exit_code = 21
    code = "db_permission"


class SlotMissing(MedarkError):
    """The named replication slot does not exist on the server."""

    exit_code = 22
    code = "slot_missing"


class WalGap(MedarkError):
    """The archived transaction log has a gap: recovery cannot pass it."""

    exit_code = 23
    code = "wal_gap"


class TargetOutOfRange(MedarkError):
    """A recovery target lies outside the window the backups can recover."""

    exit_code = 24
    code = "target_out_of_range"


class WalConflict(MedarkError):
    """A log file of this name is already archived with different content."""

    exit_code = 25
    code = "wal_conflict"


class ArchiveReadFailed(MedarkError):
    """`pg wal-fetch` could not read the archive (not merely: the file is not archived).

    Exit 126 makes PostgreSQL stop recovery (it treats exit codes above 125 as fatal)
    instead of taking the failure for the end of the archive and promoting at an earlier
    point, which would silently lose the transactions after it."""

    exit_code = 126
    code = "archive_read_failed"


class StandbyNotReady(MedarkError):
    """A DR action needs a standby that is not one: the configured standby is not in
    recovery (or not replicating), cannot be reached, or is not replaying its feed."""

    exit_code = 26
    code = "standby_not_ready"


class LagOverLimit(MedarkError):
    """The standby lags its primary by more than `max_lag_bytes` or `max_lag`: a
    failover would lose more than the plan accepts (`--force` takes the loss)."""

    exit_code = 27
    code = "lag_over_limit"


class FencingFailed(MedarkError):
    """The old primary could not be stopped, made read-only, or fenced by its hook: it
    might still take writes, so the switch did not promote the standby."""

    exit_code = 28
    code = "fencing_failed"


class HealthCheckFailed(MedarkError):
    """A DR health check (HTTP, TCP or SQL) did not pass within its time after a switch
    or in a drill; the message names the check and what it saw."""

    exit_code = 29
    code = "health_check_failed"


class SwitchRefused(MedarkError):
    """A DR action was refused before it changed anything: it would leave two writable
    primaries, or another DR action on the same system is running."""

    exit_code = 30
    code = "switch_refused"


class SeparationOfDuties(MedarkError):
    """`medark server`: an account would hold two of the three administrator roles
    (system, security, audit: 三员分立); refused, nothing changed."""

    code = "separation_of_duties"


class PasswordPolicyViolation(UsageError):
    """`medark server`: a new password breaks the password policy (the message says which
    rule, never the password)."""

    code = "password_policy"


class AuthenticationFailed(MedarkError):
    """`medark server`: a login or credential was refused (`code` says why: login_failed,
    account_locked, totp_required, session_expired, ...)."""

    code = "login_failed"

    def __init__(self, message: str, code: str = "login_failed") -> None:
        super().__init__(message)
        self.code = code


class AccessDenied(MedarkError):
    """`medark server`: the account is signed in but its role, institution or state
    (password_change_required, totp_enrolment_required) does not allow the request."""

    code = "forbidden"

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class Conflict(MedarkError):
    """`medark server`: the object exists already or its state does not allow the change
    (a second `server init`, a user name taken)."""

    code = "conflict"

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


class AuditTrailBroken(MedarkError):
    """`medark audit verify` found audit records edited, deleted, inserted or reordered,
    or a chain that disagrees with its anchors in the repository (each one named)."""

    exit_code = 31
    code = "audit_trail_broken"


class AgentRefused(AuthenticationFailed):
    """`medark agent`: the management server refused the agent's enrolment token (wrong,
    used or expired) or its credential (wrong or revoked); enrol again with a new token."""

    exit_code = 32
    code = "agent_refused"

    def __init__(self, message: str, code: str = "agent_refused") -> None:
        super().__init__(message, code)


class PacsUnavailable(MedarkError):
    """`dicom restore --to-pacs`: the DICOM peer cannot be reached, or refused the
    association (called or calling AE title unknown to it, no context accepted)."""

    exit_code = 33
    code = "pacs_unavailable"


class PacsStoreFailed(MedarkError):
    """`dicom restore --to-pacs`: the peer refused or did not confirm some instances'
    C-STORE (each named with its status); the others were stored."""

    exit_code = 34
    code = "pacs_store_failed"


class GroupIncomplete(MedarkError):
    """`group backup` / `group check`: index rows whose files are missing (each named);
    a group backup's point was still saved, with those files listed as missing."""

    exit_code = 35
    code = "group_incomplete"


class DeviceUnreachable(MedarkError):
    """`netconfig fetch`: a network device did not answer (connection refused, no route,
    timeout) or its command failed; no version was stored."""

    exit_code = 40
    code = "device_unreachable"


class DeviceHostKeyRejected(MedarkError):
    """`netconfig fetch`: the device's SSH host key is not in the known_hosts file, or
    differs from the one there; nothing was sent to it."""

    exit_code = 41
    code = "device_host_key"


class DeviceAuthFailed(MedarkError):
    """`netconfig fetch`: the device refused the username with the password or key."""

    exit_code = 42
    code = "device_auth_failed"
