"""`medark dicom find|verify` (and `restore`, when its module is installed): the DICOM
catalog the backup of a PACS tree records (engine/dicom_catalog.py).

Each action reads patient data, so each appends one record to the audit trail when a
catalog is configured (`dicom.find`, `dicom.verify`; service/access_audit.py): the
filters, the counts and the study UIDs shown, never names or IDs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import random
from typing import TYPE_CHECKING, Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, select
from medark.cli.context import Context
from medark.cli.parser import add_actions
from medark.errors import IntegrityError, UsageError
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.engine.dicom_query import FindResult, StudyHit

ACTIONS: dict[str, str] = {
    "find": "find studies and series in the DICOM catalog (patient, accession, study "
            "UID, modality, date), with the snapshots that hold them",
    "verify": "read a snapshot's DICOM files back and check them against its catalog",
}
RESTORE_MODULE = "medark.cli.commands.dicom_restore"
"""`dicom restore` lives in its own module (add_arguments, run, HELP); it joins the group
when present."""
AUDIT_UIDS = 100
"""Study UIDs named in one audit record at most (the count is always there)."""


def _restore() -> Any | None:
    if importlib.util.find_spec(RESTORE_MODULE) is None:
        return None
    return importlib.import_module(RESTORE_MODULE)


def add_arguments(p: argparse.ArgumentParser) -> None:
    restore = _restore()
    actions = dict(ACTIONS)
    if restore is not None:
        actions["restore"] = restore.HELP
    parsers = add_actions(p, actions)
    f = parsers["find"]
    f.add_argument("--patient-id", metavar="ID", help="this Patient ID, exactly")
    f.add_argument("--name", metavar="TEXT",
                   help="patient names containing TEXT, case-insensitive (张三, smith)")
    f.add_argument("--accession", metavar="NUMBER", help="this Accession Number, exactly")
    f.add_argument("--study-uid", metavar="UID", help="this Study Instance UID")
    f.add_argument("--modality", metavar="CODE", help="series of this modality (CT, MR…)")
    f.add_argument("--date", metavar="FROM..TO",
                   help="study dates in this range, inclusive (YYYYMMDD or YYYY-MM-DD; "
                        "either side may be left out; one date: that day)")
    f.add_argument("-s", "--snapshot", action="append", default=[], metavar="ID",
                   help="only search this snapshot (repeatable; default: all)")
    add_filters(f, "search snapshots")
    add_access_audit_options(f)
    v = parsers["verify"]
    v.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (prefix) or 'latest'")
    v.add_argument("--sample", metavar="N%", default=None,
                   help="check a random N%% of the instances (default: all)")
    add_access_audit_options(v)
    if restore is not None:
        restore.add_arguments(parsers["restore"])


def run(ctx: Context) -> int:
    action = ctx.args.action
    if action == "find":
        return _find(ctx)
    if action == "verify":
        return _verify(ctx)
    restore = _restore()
    assert restore is not None, "the parser offers restore only when it is installed"
    result: int = restore.run(ctx)
    return result


# ---- find ----------------------------------------------------------------------------

def _find(ctx: Context) -> int:
    from medark.engine.dicom_query import DicomFilter, date_range, find

    args = ctx.args
    low, high = date_range(args.date) if args.date else (None, None)
    flt = DicomFilter(args.patient_id, args.name, args.accession, args.study_uid,
                      args.modality, low, high)
    with audited_read(ctx, "dicom.find", filters=flt.public(),
                      snapshot=args.snapshot) as access, \
            ctx.repository(lock="shared", command="dicom find") as repo:
        snaps = select(repo, args.snapshot, args)
        result = find(repo, snaps, flt)
        shown = {sid for study in result.studies for sid in study.snapshots}
        for snap in snaps:
            if snap.id in shown:
                access.snapshot(snap.id)
        uids = [s.study_uid for s in result.studies]
        access.note(searched=result.searched, studies=len(uids),
                    instances=sum(s.instances for s in result.studies),
                    study_uids=uids[:AUDIT_UIDS], study_uids_truncated=len(uids) > AUDIT_UIDS)
    for sid, why in result.unreadable.items():
        ctx.out.warn(f"warning: snapshot {sid[:8]}: its DICOM catalog cannot be read ({why}); "
                     "searched the others")
    times = {s.id: s.time for s in snaps}
    if ctx.out.as_json:
        ctx.out.json({"filters": flt.public(), "searched": result.searched,
                      "with_catalog": result.with_catalog,
                      "unreadable": sorted(result.unreadable),
                      "studies": [s.public() for s in result.studies]})
        return 0
    _print_find(ctx, result, times)
    return 0


def _print_find(ctx: Context, result: FindResult, times: dict[str, Any]) -> None:
    out = ctx.out
    if not result.studies:
        out.text(f"no matching study in {result.searched} snapshot"
                 + ("" if result.searched == 1 else "s")
                 + ("" if result.with_catalog else " (none has a DICOM catalog)"))
        return
    for n, study in enumerate(result.studies):
        if n:
            out.text()
        out.text(_study_line(study))
        for series in sorted(study.series.values(), key=lambda s: s.series_uid):
            out.text(f"  series {series.series_uid}  {series.modality or '-'}  "
                     f"{series.instances} instance{'' if series.instances == 1 else 's'}  "
                     f"{format_bytes(series.size)}")
        out.text("  in snapshots: " + ", ".join(
            f"{sid[:8]} ({times[sid]:%Y-%m-%d %H:%M})" if sid in times else sid[:8]
            for sid in study.snapshots))
    out.text()
    out.text(f"{len(result.studies)} stud{'y' if len(result.studies) == 1 else 'ies'}, "
             f"{sum(s.instances for s in result.studies)} instances, in "
             f"{result.searched} snapshot{'' if result.searched == 1 else 's'} searched")


def _study_line(study: StudyHit) -> str:
    day = study.study_date
    when = f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 else (day or "-")
    size = sum(s.size for s in study.series.values())
    return (f"study {study.study_uid}  patient {study.patient_id or '-'} "
            f"{study.patient_name or '-'}  accession {study.accession or '-'}  {when}  "
            f"{study.study_description or '-'}  {study.instances} instances  "
            f"{format_bytes(size)}")


# ---- verify --------------------------------------------------------------------------

def sample_share(text: str | None) -> float:
    if text is None:
        return 1.0
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise UsageError(f"--sample {text!r}: give a percentage, such as 10%") from None
    if not 0 < value <= 100:
        raise UsageError(f"--sample {text!r}: give a percentage above 0 and at most 100")
    return value / 100


def _verify(ctx: Context) -> int:
    from medark.engine.dicom_query import verify
    from medark.snapshot.store import find_snapshot

    args = ctx.args
    share = sample_share(args.sample)
    with audited_read(ctx, "dicom.verify", snapshot=args.snapshot,
                      sample=args.sample or "100%") as access, \
            ctx.repository(lock="shared", command="dicom verify") as repo:
        snap = find_snapshot(repo, args.snapshot)
        access.snapshot(snap.id)
        result = verify(repo, snap, share, random.SystemRandom())
        access.note(instances=result.instances, checked=result.checked,
                    mismatches=len(result.mismatches))
    if ctx.out.as_json:
        ctx.out.json({"snapshot": snap.id, "instances": result.instances,
                      "checked": result.checked, "malformed": result.malformed,
                      "mismatches": result.mismatches})
    else:
        for line in result.mismatches:
            ctx.out.text(f"mismatch: {line}")
        if not snap.dicom_catalog:
            ctx.out.text(f"snapshot {snap.short_id} has no DICOM catalog")
        else:
            ctx.out.text(f"snapshot {snap.short_id}: {result.checked} of {result.instances} "
                         f"instances checked, {len(result.mismatches)} mismatch"
                         f"{'' if len(result.mismatches) == 1 else 'es'}"
                         + (f", {result.malformed} malformed file(s) catalogued as such"
                            if result.malformed else ""))
    if result.mismatches:
        error = IntegrityError(f"{len(result.mismatches)} DICOM instance(s) of snapshot "
                               f"{snap.short_id} do not match its catalog")
        error.in_output = ctx.out.as_json  # the document lists them
        raise error
    return 0


COMMAND = Command("dicom", "the DICOM catalog: find studies, verify a snapshot against it",
                  add_arguments, run)
