"""The monthly and quarterly reports of an institution, made by the management server:
the same PDF `medark report` writes (service/report_data.py gathers, report_render.py
draws), from the institution's configuration version current at the request and its own
jobs, alerts, DR actions and audit records.

A request is queued (202) and made by a child process (server/report_worker.py) that a
background thread of the server process that took it starts, one at a time per server
process: WeasyPrint takes seconds of CPU holding the GIL, which in the server's own
process would stall every request it serves meanwhile. The row records the process
making it (`worker`, host:pid: the server's while queued, the child's while running),
so a report whose process died is closed as failed by the next server process on that
host that lists reports; a new request makes it again. The PDF is kept in the catalog
row (tables_reports.py). Audit: report.generate (the request, and its refusals),
report.finish (the server: done or failed), report.download (and its refusals).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from medark.catalog.store import Catalog
from medark.errors import Conflict, MedarkError, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.configs import config_version
from medark.server.db import audit, aware, transaction
from medark.server.oversight import allowed, configured, not_launched, scope
from medark.server.tables_reports import ReportRow
from medark.service.report_data import gather_period, period_bounds, previous_period
from medark.service.report_fonts import cjk_font, load_renderer
from medark.util import clock
from medark.util.pids import pid_alive

KINDS = ("monthly", "quarterly")
LANGUAGES = ("zh", "en")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
MAX_LIST = 1000
NAME_LIMIT = 120
"""Characters of the hospital's name in a download's file name."""
_UNSAFE = re.compile(r'[\\/:*?"<>|]')
WORKER_TIMEOUT = 1800.0
"""Seconds a report may take before its child is stopped and the report failed."""
_RENDERING = threading.Lock()
log = logging.getLogger("medark.server")


@dataclass(frozen=True)
class ReportInfo:
    """A report's row without its PDF."""

    id: int
    institution: str
    kind: str
    period: str
    language: str
    status: str
    config_version: int | None
    file_name: str
    size: int | None
    sha256: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    def view(self) -> dict[str, Any]:
        def fmt(value: datetime | None) -> str | None:
            return clock.format_time(value) if value is not None else None

        return {"id": self.id, "institution": self.institution, "kind": self.kind,
                "period": self.period, "language": self.language, "status": self.status,
                "config_version": self.config_version, "file_name": self.file_name,
                "size": self.size, "sha256": self.sha256, "created_by": self.created_by,
                "created_at": fmt(self.created_at), "started_at": fmt(self.started_at),
                "finished_at": fmt(self.finished_at), "error": self.error}


def _info(row: ReportRow) -> ReportInfo:
    return ReportInfo(row.id, row.institution, row.kind, row.period, row.language,
                      row.status, row.config_version, row.file_name, row.size, row.sha256,
                      row.created_by, aware(row.created_at) or clock.now(),
                      aware(row.started_at), aware(row.finished_at), row.error)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def file_name(hospital: str, kind: str, label: str, language: str) -> str:
    """The download's name: the hospital's name (which may be Chinese) without what a
    file system or a Content-Disposition header cannot take."""
    name = "".join(c for c in unicodedata.normalize("NFC", hospital)
                   if unicodedata.category(c)[0] not in "CZ" or c == " ")
    name = " ".join(_UNSAFE.sub("", name).split())[:NAME_LIMIT].strip(". ") or "medark"
    if language == "zh":
        return f"{name}-{label}-{'月度报告' if kind == 'monthly' else '季度报告'}.pdf"
    return f"{name}-{label}-{kind}-report.pdf"


def ascii_name(info: ReportInfo) -> str:
    """The fallback name for clients without RFC 6266's filename* (ASCII only)."""
    suffix = "" if info.language == "zh" else f"-{info.language}"
    return f"report-{info.institution}-{info.period}{suffix}.pdf"


# requesting


def request_report(catalog: Catalog, principal: Principal, institution: str, kind: str,
                   period: str | None, language: str, now: datetime) -> ReportInfo:
    """Queue a report of the institution (reports.generate, in scope, with a
    configuration); the period is the last whole month or quarter when not given, and
    must have begun (422 otherwise)."""
    allowed(catalog, principal, R.REPORTS_GENERATE, "report.generate", institution,
            institution)
    if kind not in KINDS or language not in LANGUAGES:
        raise UsageError(f"kind is one of {', '.join(KINDS)}; language one of "
                         f"{', '.join(LANGUAGES)}")
    version = configured(catalog, principal, institution, "report.generate")
    config = version.config
    label = (period or previous_period(kind, now, config)).upper()
    try:
        _first, start, _end = period_bounds(kind, label, config)
    except OverflowError:
        raise UsageError(f"{label!r} is out of range") from None
    if start > now:
        raise UsageError(f"the {kind} period {label} has not begun yet")
    hospital = config.hospital.name or institution
    row = ReportRow(institution=institution, kind=kind, period=label, language=language,
                    status=QUEUED, config_version=version.version,
                    file_name=file_name(hospital, kind, label, language),
                    created_by=principal.actor, created_at=now, worker=_worker())
    with transaction(catalog) as session:
        session.add(row)
        session.flush()
        info = _info(row)
    audit(catalog, principal.actor, principal.address, "report.generate", f"report:{info.id}",
          "ok", institution, {"report": info.id, "kind": kind, "period": label,
                              "language": language, "config_version": version.version})
    return info


def start(catalog: Catalog, report_id: int) -> threading.Thread:
    """Have the report made by a child process, from a background thread."""
    thread = threading.Thread(target=_child, args=(catalog, report_id),
                              name=f"report-{report_id}", daemon=True)
    thread.start()
    return thread


def _child(catalog: Catalog, report_id: int) -> None:
    """Run the worker (the catalog's URL, which may hold a password, in its environment,
    never in argv); a report it left unfinished (it crashed, or took too long) fails."""
    argv = [sys.executable, "-m", "medark.server.report_worker", str(report_id)]
    env = {**os.environ, "MEDARK_CATALOG": catalog.url}
    with _RENDERING:
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=WORKER_TIMEOUT, check=False)
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            why = (lines[-1][:300] if lines else "") or f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            why = f"stopped after {WORKER_TIMEOUT:.0f} s"
        except OSError as exc:
            why = f"could not start the report worker: {exc.strerror or exc}"
        try:
            _abandon(catalog, report_id, f"the report worker ended without it: {why}")
        except MedarkError as exc:
            log.error("report %s: %s", report_id, type(exc).__name__)


def _abandon(catalog: Catalog, report_id: int, error: str) -> None:
    """Fail the report unless it finished."""
    with transaction(catalog) as session:
        row = session.get(ReportRow, report_id)
        if row is None or row.status not in (QUEUED, RUNNING):
            return
        row.status, row.finished_at, row.error = FAILED, clock.now(), error
        info = _info(row)
    audit(catalog, "server", "server", "report.finish", f"report:{report_id}", "failed",
          info.institution, {"report": report_id, "kind": info.kind, "period": info.period,
                             "error": error})


def generate(catalog: Catalog, report_id: int) -> None:
    """Claim the queued report, make its PDF and store it (done), or record why not
    (failed). The report worker's work (report_worker.py)."""
    info = _claim(catalog, report_id)
    if info is None:
        return
    try:
        data = _render(catalog, info)
    except MedarkError as exc:
        _finish(catalog, info, None, str(exc).splitlines()[0] if str(exc) else exc.code)
    except Exception as exc:  # a bug: this report fails, the next is made
        log.error("report %s failed: %s", report_id, type(exc).__name__)
        _finish(catalog, info, None, f"internal error ({type(exc).__name__})")
    else:
        _finish(catalog, info, data, None)


def _claim(catalog: Catalog, report_id: int) -> ReportInfo | None:
    with transaction(catalog) as session:
        claimed = session.execute(
            update(ReportRow).where(ReportRow.id == report_id, ReportRow.status == QUEUED)
            .values(status=RUNNING, started_at=clock.now(), worker=_worker()))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.get(ReportRow, report_id)
        return None if row is None else _info(row)


def _render(catalog: Catalog, info: ReportInfo) -> bytes:
    write_report = load_renderer()
    font = cjk_font()
    version = config_version(catalog, info.institution, info.config_version or 1)
    report = gather_period(version.config, catalog, info.kind, info.period, clock.now(),
                           not_launched, info.institution)
    with tempfile.TemporaryDirectory(prefix="medark-report-") as out:
        _html, pdf = write_report(report, Path(out), font, info.language)
        return pdf.read_bytes()


def _finish(catalog: Catalog, info: ReportInfo, data: bytes | None,
            error: str | None) -> None:
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    with transaction(catalog) as session:
        row = session.get(ReportRow, info.id)
        if row is None:
            return
        row.status = DONE if data is not None else FAILED
        row.content = data
        row.size = len(data) if data is not None else None
        row.sha256 = digest
        row.finished_at = clock.now()
        row.error = error
    detail: dict[str, Any] = {"report": info.id, "kind": info.kind, "period": info.period}
    detail.update({"size": len(data), "sha256": digest} if data is not None
                  else {"error": error})
    audit(catalog, "server", "server", "report.finish", f"report:{info.id}",
          "ok" if data is not None else "failed", info.institution, detail)


# reading


def reap_interrupted(catalog: Catalog) -> int:
    """Close as failed the queued or running reports of this host's server processes
    that are gone; how many."""
    host = socket.gethostname()
    closed = 0
    with transaction(catalog) as session:
        rows = session.scalars(select(ReportRow).where(
            ReportRow.status.in_((QUEUED, RUNNING)),
            ReportRow.worker.like(f"{host}:%")))
        for row in rows:
            pid = row.worker.rpartition(":")[2]
            if pid.isdigit() and not pid_alive(int(pid)):
                row.status = FAILED
                row.finished_at = clock.now()
                row.error = ("interrupted: the server process making it ended; request "
                             "the report again")
                closed += 1
    return closed


def list_reports(catalog: Catalog, principal: Principal, institution: str | None,
                 limit: int) -> list[ReportInfo]:
    """The reports of the institutions in scope, newest first."""
    allowed(catalog, principal, R.REPORTS_READ, "report.read", institution, institution)
    narrowed = scope(catalog, principal, institution, "report.read")
    reap_interrupted(catalog)
    query = select(ReportRow).order_by(ReportRow.id.desc()).limit(min(limit, MAX_LIST))
    if narrowed is not None:
        query = query.where(ReportRow.institution == narrowed)
    with transaction(catalog) as session:
        return [_info(row) for row in session.scalars(query)]


def _visible(session: Any, principal: Principal, report_id: int) -> ReportRow:
    row = session.get(ReportRow, report_id)
    if row is None or not (principal.center or row.institution == principal.institution):
        raise ObjectNotFound(f"no report {report_id}")
    return row  # type: ignore[no-any-return]


def get_report(catalog: Catalog, principal: Principal, report_id: int) -> ReportInfo:
    allowed(catalog, principal, R.REPORTS_READ, "report.read", f"report:{report_id}", None)
    reap_interrupted(catalog)
    with transaction(catalog) as session:
        return _info(_visible(session, principal, report_id))


def download(catalog: Catalog, principal: Principal, report_id: int
             ) -> tuple[ReportInfo, bytes]:
    """The report and its PDF (404 when not visible, 409 `report_not_ready` before it
    is done); the download audited, refusals too."""
    target = f"report:{report_id}"
    allowed(catalog, principal, R.REPORTS_READ, "report.download", target, None)
    try:
        with transaction(catalog) as session:
            row = _visible(session, principal, report_id)
            info, data = _info(row), row.content
    except ObjectNotFound:
        audit(catalog, principal.actor, principal.address, "report.download", target,
              "denied", None, {"reason": "not_found"})
        raise
    if info.status != DONE or data is None:
        raise Conflict(f"report {report_id} is {info.status}"
                       + (f": {info.error}" if info.error else ", not ready yet"),
                       "report_not_ready")
    audit(catalog, principal.actor, principal.address, "report.download", target, "ok",
          info.institution, {"report": info.id, "size": len(data), "sha256": info.sha256})
    return info, data
