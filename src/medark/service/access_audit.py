"""Patient-data reads by the command line in the audit trail (docs/audit.md, "What the
command line records"): `restore`, `dump`, `ls`, `find`, `diff`, `pg restore`,
`mysql restore` and `dicom find|verify|restore` each append one record after the read,
with its result.

Which catalog: --catalog, else MEDARK_CATALOG, else the configuration file's catalog.url
when there is a configuration file (--config, MEDARK_CONFIG, or /etc/medark/medark.toml
if it exists). None of these: a single-user CLI, nothing is recorded.

Fail closed: with a catalog configured, the catalog is opened and the signing key read
before the read starts, and a catalog or key that does not answer refuses the read
(CatalogError, exit 16): a hospital's read of patient data must not silently go
unaudited. `--allow-unaudited` is the documented way through for a disaster recovery
with the catalog down: the record is still attempted, and a warning says when it could
not be written.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medark.config import environment as env
from medark.errors import CatalogError, MedarkError

if TYPE_CHECKING:
    from medark.catalog.store import Catalog

ACTIONS = ("snapshot.restore", "snapshot.dump", "snapshot.browse", "snapshot.find",
           "snapshot.diff", "db.restore", "dicom.find", "dicom.verify", "dicom.restore")
ERROR_CHARS = 300
"""Characters of a failed read's error message kept in the record."""


@dataclass
class Access:
    """One read being audited: the command fills in what it read as it learns it."""

    action: str
    repository: str
    detail: dict[str, Any] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)

    def snapshot(self, snapshot_id: str) -> None:
        """The read reached this snapshot (it becomes the record's target)."""
        if snapshot_id not in self.snapshots:
            self.snapshots.append(snapshot_id)

    def note(self, **detail: Any) -> None:
        """More of what was read (paths, filters, counts); never a secret."""
        self.detail.update(detail)

    def target(self) -> str:
        snaps = f" snapshot:{','.join(self.snapshots)}" if self.snapshots else ""
        text = f"repository:{self.repository}{snaps}"
        return text if len(text) <= 500 else text[:499] + "…"


def public_location(location: str) -> str:
    """The repository as a record names it: a local path made absolute, a URL without
    its user, password or query (an S3 key or a token may hide in either)."""
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        return os.path.abspath(location)
    head, sep, rest = location.partition("://")
    if not sep:
        return location
    # up to the last "@": a password holding "/" or "@" must not leave a piece behind
    rest = rest.rpartition("@")[2].split("?", 1)[0].split("#", 1)[0]
    return f"{head}://{rest}"


def configured_catalog(given: str | None, config_file: str | None) -> str | None:
    """The catalog reads are recorded in, or None when none is configured anywhere."""
    url = given or env.CATALOG.get()
    if url:
        return url
    path = env.config_path(config_file)
    if config_file is None and not env.CONFIG.get() and not path.exists():
        return None
    from medark.service.plans import load_plans  # pydantic: only with a configuration

    return load_plans(path).catalog.url


def actor() -> str:
    """"cli:<OS user>", as `audit export` records it (a uid when the user has no name)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = f"uid {os.getuid()}"
    return f"cli:{name}"[:200]


@contextmanager
def audited(action: str, location: str, catalog_url: str | None, allow_unaudited: bool,
            warn: Callable[[str], None], **detail: Any) -> Iterator[Access]:
    """Around one read: refuse before it when the configured catalog cannot record it,
    append its record after it (result ok or failed; a failure is raised again)."""
    access = Access(action, public_location(location), dict(detail))
    if catalog_url is None:
        yield access
        return
    catalog = _ready(catalog_url, allow_unaudited, warn)
    try:
        try:
            yield access
        except BaseException as exc:
            _record(catalog, access, exc, allow_unaudited=True, warn=warn)
            raise
        _record(catalog, access, None, allow_unaudited, warn)
    finally:
        if catalog is not None:
            catalog.close()


def _ready(url: str, allow_unaudited: bool, warn: Callable[[str], None]) -> Catalog | None:
    """The catalog, opened, with the key that signs its records read; None when it
    cannot record and --allow-unaudited said to read anyway."""
    from medark.catalog.audit_trail import signer
    from medark.catalog.store import Catalog

    catalog: Catalog | None = None
    try:
        catalog = Catalog(url)
        signer(catalog)
    except CatalogError as exc:
        if catalog is not None:
            catalog.close()
        if allow_unaudited:
            warn(f"warning: this read is not audited ({exc}); --allow-unaudited")
            return None
        raise CatalogError(f"refusing to read patient data unaudited: {exc} (reads are "
                           "recorded in the configured catalog's audit trail; "
                           "--allow-unaudited reads anyway)") from None
    return catalog


def _record(catalog: Catalog | None, access: Access, failure: BaseException | None,
            allow_unaudited: bool, warn: Callable[[str], None]) -> None:
    from medark.catalog.audit_trail import AuditEntry, append

    if catalog is None:
        return
    detail = dict(access.detail)
    if failure is not None:
        code = failure.code if isinstance(failure, MedarkError) else type(failure).__name__
        message = str(failure).splitlines()[0] if str(failure) else ""
        # not "code": a detail key named so is taken for a secret (SECRET_NAMES)
        detail["error"] = code
        detail["reason"] = message[:ERROR_CHARS]
    entry = AuditEntry(actor(), socket.gethostname()[:255] or "cli", access.action,
                       access.target(), "failed" if failure is not None else "ok",
                       detail=detail)
    try:
        append(catalog, entry)
    except (CatalogError, ValueError, TypeError) as exc:
        if allow_unaudited:
            warn(f"warning: the audit record of this read could not be written: {exc}")
            return
        raise CatalogError(f"the read finished but its audit record could not be "
                           f"written: {exc}") from None
