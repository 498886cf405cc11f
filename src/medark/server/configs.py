"""Each institution's protection configuration, versioned: the medark.toml document
(docs/configuration.md), checked exactly as `medark config check` checks a file, and
saved as a new version on every change (a version is never rewritten).

A save names the version it was edited from (`base_version`, None for the first): when
someone saved in between, it is refused (409 `config_changed`) instead of silently
overwriting their change. The catalog keeps the documents, and every reader of an
institution's configuration sees them, so a document must not hold a password: a DSN or
URL with one is refused (the password belongs in a password file or the environment).
Every change and every refusal is audited (`config.change`, `config.read`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.config.plans import Path as KeyPath
from medark.errors import AccessDenied, ConfigInvalid, Conflict, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server.accounts import CENTER, NAME, TITLE_CHARACTERS, Principal, institution_row
from medark.server.db import audit, aware, transaction
from medark.server.tables import Institution
from medark.server.tables_configs import ConfigVersionRow
from medark.service.plans import load_plans_text, redact
from medark.util import clock

MAX_DOCUMENT = 1_000_000
"""Characters of one document; a hospital's medark.toml is a few kilobytes."""
MAX_COMMENT = 500
SHOWN_PROBLEMS = 20
"""Problems named in a refusal's one-line message (all of them in `problems`)."""
_COMMENT = re.compile(TITLE_CHARACTERS + "*")
_PROBLEM = re.compile(r"(?P<line>line \d+): (?P<key>[^\s:]+): (?P<what>.*)", re.S)
"""A problem as config/loader.py writes it: `line N: key: what is wrong`."""
CHECKED_KEPT = 256
"""Checked configurations kept by their document's SHA-256 (a few hundred kilobytes)."""
_CHECKED: OrderedDict[str, MedarkConfig] = OrderedDict()
_CHECKED_LOCK = threading.Lock()


class ConfigRejected(UsageError):
    """A configuration document breaks the rules of `medark config check` (or holds a
    password); nothing was saved. The message names every problem as `line N: key:
    what is wrong` (API 422 `invalid_config`; CLI exit 15 as `config check`)."""

    exit_code = 15
    code = "invalid_config"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]

    def field_problems(self) -> list[tuple[str, str]]:
        """Each problem as (its key, "line N: what is wrong"); a problem without a key
        (TOML syntax, the document's size) is the field `document`."""
        found = []
        for problem in self.problems:
            match = _PROBLEM.fullmatch(problem)
            if match and match["key"]:
                found.append((match["key"], f"{match['line']}: {match['what']}"))
            else:
                found.append(("document", problem))
        return found


@dataclass(frozen=True)
class ConfigVersion:
    """One saved version of an institution's configuration, checked."""

    institution: str
    version: int
    document: str
    config: MedarkConfig
    author: str
    created_at: datetime
    comment: str

    @property
    def sha256(self) -> str:
        return document_hash(self.document)


@dataclass(frozen=True)
class VersionInfo:
    """A version without its document (the history list)."""

    institution: str
    version: int
    sha256: str
    author: str
    created_at: datetime
    comment: str


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def check_document(document: str) -> MedarkConfig:
    """The configuration, or ConfigRejected listing every problem with its line. A
    document checked before is not checked again (the list views read every
    institution's on each request; the checks depend on the text alone)."""
    key = document_hash(document)
    with _CHECKED_LOCK:
        found = _CHECKED.get(key)
        if found is not None:
            _CHECKED.move_to_end(key)
            return found
    config = _check(document)
    with _CHECKED_LOCK:
        _CHECKED[key] = config
        while len(_CHECKED) > CHECKED_KEPT:
            _CHECKED.popitem(last=False)
    return config


def _check(document: str) -> MedarkConfig:
    if len(document) > MAX_DOCUMENT:
        raise ConfigRejected(f"the document has {len(document)} characters; at most "
                             f"{MAX_DOCUMENT}")
    if _surrogates(document):
        raise ConfigRejected("the document is not valid Unicode (a lone surrogate)")
    try:
        return load_plans_text(document, _secret_problems)
    except ConfigInvalid as exc:
        raise _rejected(exc.problems) from None


def _rejected(problems: list[str]) -> ConfigRejected:
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    head = ("the configuration has a problem" if len(problems) == 1
            else f"the configuration has {len(problems)} problems")
    return ConfigRejected(f"{head}: {shown}" + (f"; and {more} more" if more > 0 else ""),
                          problems)


def _secret_problems(config: MedarkConfig) -> list[tuple[KeyPath, str]]:
    """A password spelt in a DSN or URL: the server stores the document in the catalog
    and shows it to every reader of the institution's configuration. (The DR section's
    DSNs are refused by the schema already.)"""
    found: list[tuple[KeyPath, str]] = []
    for name, repo in config.repositories.items():
        if redact(repo.url) != repo.url:
            found.append((("repositories", name, "url"),
                          "no password in the URL (the document is kept in the catalog in "
                          "clear text): give it in MEDARK_REST_PASSWORD_FILE on the host"))
    for name, system in config.systems.items():
        for index, source in enumerate(system.sources):
            if source.dsn is not None and redact(source.dsn) != source.dsn:
                found.append((("systems", name, "sources", index, "dsn"),
                              "no password in the DSN (the document is kept in the "
                              "catalog in clear text): use a password file on the host "
                              "(~/.pgpass, the MariaDB option file) or the environment"))
    if redact(config.catalog.url) != config.catalog.url:
        found.append((("catalog", "url"), "no password in the catalog URL (the document "
                      "is kept in clear text): give MEDARK_CATALOG on the host instead"))
    return found


def _surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


# scope


def scoped_institution(session: Session, principal: Principal, name: str) -> Institution:
    """The institution `name` when it is the principal's own (or the principal is the
    regional center's): 403 `out_of_scope` for another one, whether it exists or not
    (a hospital learns nothing of the others), 404 for an unknown one (the center)."""
    if not principal.center and name != principal.institution:
        raise AccessDenied(f"institution {name!r} is outside your scope (your institution "
                           f"is {principal.institution})", "out_of_scope")
    row = None if not NAME.fullmatch(name) else session.scalars(
        select(Institution).where(Institution.name == name)).first()
    if row is None:
        raise ObjectNotFound(f"no institution {name!r}")
    return row


def checked_read(catalog: Catalog, principal: Principal, target: str,
                 institution: str | None = None) -> None:
    """plans.read, else the refusal audited (config.read, denied) and raised."""
    try:
        principal.require(R.PLANS_READ)
    except AccessDenied as exc:
        _audit(catalog, principal, "config.read", target, "denied", institution,
               {"reason": exc.code})
        raise


def in_scope(catalog: Catalog, session: Session, principal: Principal, name: str,
             action: str, target: str | None = None) -> Institution:
    """scoped_institution, a refusal audited (`action`, denied) before it is raised."""
    try:
        return scoped_institution(session, principal, name)
    except AccessDenied as exc:
        _audit(catalog, principal, action, target or name, "denied", name,
               {"reason": exc.code})
        raise


# reading


def _row_version(row: ConfigVersionRow, institution: str) -> ConfigVersion:
    try:
        config = check_document(row.document)
    except ConfigRejected as exc:
        raise ConfigRejected(f"version {row.version} of {institution}'s configuration no "
                             f"longer passes the checks (save a corrected version): {exc}",
                             exc.problems) from None
    return ConfigVersion(institution, row.version, row.document, config, row.author,
                         aware(row.created_at) or clock.now(), row.comment)


def _latest(session: Session, institution_id: int) -> ConfigVersionRow | None:
    return session.scalars(select(ConfigVersionRow)
                           .where(ConfigVersionRow.institution_id == institution_id)
                           .order_by(ConfigVersionRow.version.desc()).limit(1)).first()


def current_config(catalog: Catalog, institution: str) -> ConfigVersion | None:
    """The newest version of the institution's configuration, or None when it has none;
    ObjectNotFound for an unknown institution. (No scope check: the caller's.)"""
    with transaction(catalog) as session:
        inst = institution_row(session, institution)
        row = _latest(session, inst.id)
    return None if row is None else _row_version(row, institution)


def config_versions(catalog: Catalog, institution: str) -> list[VersionInfo]:
    """Every version, newest first, without the documents."""
    with transaction(catalog) as session:
        inst = institution_row(session, institution)
        rows = session.scalars(select(ConfigVersionRow)
                               .where(ConfigVersionRow.institution_id == inst.id)
                               .order_by(ConfigVersionRow.version.desc())).all()
    return [_info(row, institution) for row in rows]


def config_version(catalog: Catalog, institution: str, version: int) -> ConfigVersion:
    """One version; ObjectNotFound when the institution has no such version."""
    with transaction(catalog) as session:
        inst = institution_row(session, institution)
        row = session.scalars(select(ConfigVersionRow).where(
            ConfigVersionRow.institution_id == inst.id,
            ConfigVersionRow.version == version)).first()
    if row is None:
        raise ObjectNotFound(f"{institution} has no configuration version {version}")
    return _row_version(row, institution)


def stored(catalog: Catalog, institution: str, version: int | None = None
           ) -> tuple[VersionInfo, str] | None:
    """A version (the newest for None) and its document as saved, not checked again (a
    version a newer Medark's rules refuse can still be read and corrected); None when
    there is no such version."""
    with transaction(catalog) as session:
        inst = institution_row(session, institution)
        row = _latest(session, inst.id) if version is None else session.scalars(
            select(ConfigVersionRow).where(ConfigVersionRow.institution_id == inst.id,
                                           ConfigVersionRow.version == version)).first()
    if row is None:
        return None
    return _info(row, institution), row.document


def _info(row: ConfigVersionRow, institution: str) -> VersionInfo:
    return VersionInfo(institution, row.version, row.sha256, row.author,
                       aware(row.created_at) or clock.now(), row.comment)


def _document(catalog: Catalog, institution: str, version: int) -> str:
    found = stored(catalog, institution, version)
    if found is None:
        raise ObjectNotFound(f"{institution} has no configuration version {version}")
    return found[1]


def config_diff(catalog: Catalog, institution: str, old: int, new: int) -> str:
    """A unified diff from version `old` to `new` (empty when they are the same)."""
    before = _document(catalog, institution, old)
    after = _document(catalog, institution, new)
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        f"{institution}/v{old}", f"{institution}/v{new}"))




# the API's reads, with the caller's role and scope


def require_reader(catalog: Catalog, principal: Principal, institution: str) -> None:
    """plans.read and the institution in scope (refusals audited), else raised."""
    checked_read(catalog, principal, institution, institution)
    with transaction(catalog) as session:
        in_scope(catalog, session, principal, institution, "config.read")


# saving


def save_config(catalog: Catalog, principal: Principal, institution: str, document: str,
                comment: str, base_version: int | None) -> ConfigVersion:
    """Check the document and save it as the institution's next version. Needs
    plans.write and the institution in scope (403), a valid document (ConfigRejected,
    422) and `base_version` equal to the current version, None for the first (409
    `config_changed`). Each outcome is audited as config.change."""
    detail: dict[str, object] = {"base_version": base_version, "sha256": document_hash(document),
              "comment": comment[:MAX_COMMENT]}
    try:
        principal.require(R.PLANS_WRITE)
    except AccessDenied as exc:
        _audit(catalog, principal, "config.change", institution, "denied", institution,
               {**detail, "reason": exc.code})
        raise
    with transaction(catalog) as session:
        in_scope(catalog, session, principal, institution, "config.change")
    try:
        if len(comment) > MAX_COMMENT or not _COMMENT.fullmatch(comment) \
                or _surrogates(comment):
            raise ConfigRejected(f"a comment is one line of at most {MAX_COMMENT} "
                                 "characters (no control characters)")
        config = check_document(document)
    except ConfigRejected as exc:
        _audit(catalog, principal, "config.change", institution, "failed", institution,
               {**detail, "reason": exc.code, "problems": len(exc.problems)})
        raise
    now = clock.now()
    try:
        with transaction(catalog) as session:
            inst = institution_row(session, institution)
            current = session.scalar(select(func.max(ConfigVersionRow.version)).where(
                ConfigVersionRow.institution_id == inst.id))
            if current != base_version:
                raise _changed(institution, base_version, current)
            version = (current or 0) + 1
            session.add(ConfigVersionRow(
                institution_id=inst.id, version=version, document=document,
                sha256=document_hash(document), author=principal.actor, comment=comment,
                created_at=now))
    except IntegrityError:  # another save took this version between our read and write
        with transaction(catalog) as session:
            latest = _latest(session, institution_row(session, institution).id)
        changed = _changed(institution, base_version, latest.version if latest else None)
        _audit_conflict(catalog, principal, institution, detail, changed)
        raise changed from None
    except Conflict as exc:
        _audit_conflict(catalog, principal, institution, detail, exc)
        raise
    _audit(catalog, principal, "config.change", institution, "ok", institution,
           {"version": version, "sha256": document_hash(document), "comment": comment})
    return ConfigVersion(institution, version, document, config, principal.actor, now,
                         comment)


def _changed(institution: str, base: int | None, current: int | None) -> Conflict:
    now = f"version {current}" if current is not None else "no version"
    edited = f"version {base}" if base is not None else "no version (a first one)"
    return Conflict(f"{institution}'s configuration changed meanwhile: it is at {now}, "
                    f"the change was made to {edited}; load the current version, apply "
                    "the change again and save with its base_version", "config_changed")


def _audit_conflict(catalog: Catalog, principal: Principal, institution: str,
                    detail: dict[str, object], exc: Conflict) -> None:
    _audit(catalog, principal, "config.change", institution, "failed", institution,
           {**detail, "reason": exc.code})


def _audit(catalog: Catalog, principal: Principal, action: str, target: str, result: str,
           institution: str | None, detail: dict[str, object]) -> None:
    audit(catalog, principal.actor, principal.address, action, target, result,
          institution, dict(detail))


def cli_principal(catalog: Catalog, address: str = "cli") -> Principal:
    """The "server" actor of `medark server config import`: the regional center's system
    administrator, acting from the host (whoever can run it can read the catalog)."""
    with transaction(catalog) as session:
        center = session.scalars(select(Institution).where(
            Institution.kind == CENTER)).first()
        if center is None:
            raise UsageError("the catalog has no regional center: run `medark server init` "
                             "first")
        return Principal(name="server", kind="cli", roles=(R.SYSADMIN,),
                         institution=center.name, institution_id=center.id, center=True,
                         address=address)
