"""`medark dicom restore --study UID [--series UID] [--snapshot ID] (--target DIR |
--to-pacs AET@host:port)`: one study out of the repository by its DICOM catalog
(engine/dicom_restore.py); joins the `dicom` group from cli/commands/dicom.py.

A read of patient data: one `dicom.restore` record in the audit trail when a catalog is
configured (study and series UIDs, snapshot, instance count, destination, stored and
failed counts), refused before anything is read when that record cannot be written
(service/access_audit.py). Exit 34 when the PACS did not store every instance, 33 when
it cannot be reached or refuses the association.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.context import Context
from medark.errors import MedarkError, PacsStoreFailed, UsageError
from medark.util import clock
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.engine.dicom_restore import StudyPoint
    from medark.engine.restore import RestoreSummary
    from medark.sources.dicom.push import PushSummary, StoreResult

HELP = ("restore one study (or series) by its DICOM catalog to a directory, or push it "
        "into a PACS by C-STORE")
DEFAULT_TIMEOUT = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="UID",
                   help="the Study Instance UID to restore")
    p.add_argument("--series", metavar="UID",
                   help="only this Series Instance UID of the study")
    p.add_argument("--snapshot", metavar="ID",
                   help="from this snapshot (id prefix or 'latest'; default: the newest "
                        "snapshot whose catalog holds the study)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-t", "--target", metavar="DIR",
                       help="restore the study's files below DIR with their full paths")
    where.add_argument("--to-pacs", metavar="AET@HOST:PORT",
                       help="send the instances to this DICOM peer by C-STORE (nothing "
                            "is written to disk)")
    p.add_argument("--calling-aet", default="MEDARK", metavar="AET",
                   help="our AE title towards the PACS (default MEDARK)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="seconds to wait for the PACS to connect, accept the association "
                        f"and confirm each instance (default {DEFAULT_TIMEOUT:g})")
    add_access_audit_options(p)


def run(ctx: Context) -> int:
    from medark.sources.dicom.push import PacsAddress, Timeouts, check_aet

    args = ctx.args
    peer = PacsAddress.parse(args.to_pacs) if args.to_pacs else None
    if peer is not None:
        check_aet(args.calling_aet, "--calling-aet")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g}: give a number of seconds above 0")
    destination = str(peer) if peer is not None else os.path.abspath(args.target)
    with audited_read(ctx, "dicom.restore", study_uid=args.study, series_uid=args.series,
                      snapshot=args.snapshot, destination=destination,
                      to="pacs" if peer else "directory") as access, \
            ctx.repository(lock="shared", command="dicom restore") as repo:
        point = _locate(repo, args)
        access.snapshot(point.snapshot.id)
        access.note(instances=len(point.records), series_uids=point.series)
        ctx.out.prose(_announce(point, args.study, args.series, destination))
        if peer is not None:
            timeouts = Timeouts(connect=args.timeout, acse=args.timeout,
                                dimse=args.timeout, network=args.timeout)
            pushed = _push(ctx, repo, point, peer, args.calling_aet, timeouts)
            access.note(stored=pushed.count("success"), warnings=pushed.count("warning"),
                        failed=pushed.count("failure"))
            _report_push(ctx, point, args, pushed)
        else:
            restored = _to_dir(ctx, repo, point, args.target)
            access.note(files=restored.files_restored, bytes=restored.bytes_restored)
            _report_dir(ctx, point, args, restored)
    return 0


def _locate(repo: Any, args: argparse.Namespace) -> StudyPoint:
    from medark.engine.dicom_restore import locate_study
    from medark.snapshot.store import all_snapshots, find_snapshot

    if args.snapshot:
        given = find_snapshot(repo, args.snapshot)
        return locate_study(repo, [given], args.study, args.series, given=given)
    return locate_study(repo, all_snapshots(repo), args.study, args.series)


def _announce(point: StudyPoint, study: str, series: str | None, destination: str) -> str:
    snap = point.snapshot
    what = f"study {study}" + (f" series {series}" if series else "")
    return (f"restoring {what}: {len(point.records)} instance(s), "
            f"{format_bytes(point.size)}, from snapshot {snap.short_id} of "
            f"{clock.format_time(snap.time)} by {snap.hostname} to {destination}")


def _base(point: StudyPoint, args: argparse.Namespace) -> dict[str, Any]:
    return {"message_type": "summary", "study_uid": args.study, "series_uid": args.series,
            "series_uids": point.series, "snapshot_id": point.snapshot.id,
            "instances": len(point.records), "bytes": point.size}


# ---- to a directory ----------------------------------------------------------------

def _to_dir(ctx: Context, repo: Any, point: StudyPoint, target: str) -> RestoreSummary:
    from medark.engine.dicom_restore import restore_to_dir

    progress = ctx.progress("dicom restore")
    try:
        return restore_to_dir(repo, point, target, progress)
    finally:
        progress.close()


def _report_dir(ctx: Context, point: StudyPoint, args: argparse.Namespace,
                summary: RestoreSummary) -> None:
    if ctx.out.as_json:
        ctx.out.json({**_base(point, args), "destination": summary.target,
                      "restore": summary.public()})
    else:
        ctx.out.text(
            f"Summary: restored {len(point.records)} instance(s) of study {args.study} "
            f"({format_bytes(summary.bytes_restored)}) to {summary.target} in "
            f"{format_duration(summary.seconds_elapsed)}; {summary.files_verified} "
            f"file(s) read back and verified")
    try:
        summary.raise_for_problems()
    except MedarkError as failure:
        failure.in_output = ctx.out.as_json
        raise


# ---- into a PACS -------------------------------------------------------------------

def _push(ctx: Context, repo: Any, point: StudyPoint, peer: Any, calling_aet: str,
          timeouts: Any) -> PushSummary:
    from medark.engine.dicom_restore import push_to_pacs

    progress = ctx.progress("dicom push")
    progress.set_total(len(point.records), point.size)
    sizes = {r.path: r.size for r in point.records}

    def done(result: StoreResult) -> None:
        progress.advance(files=1, nbytes=sizes.get(result.name, 0))
        if result.status == "failure":
            progress.warn(f"failed: {_result_line(result)}")
        elif result.status == "warning":
            progress.warn(f"warning: {_result_line(result)}")

    try:
        return push_to_pacs(repo, point, peer, calling_aet, timeouts, done)
    finally:
        progress.close()


def _result_line(result: StoreResult) -> str:
    code = "" if result.code is None else f" status 0x{result.code:04X}"
    return f"{result.name} (SOP {result.sop_instance}){code}: {result.message or '-'}"


def _report_push(ctx: Context, point: StudyPoint, args: argparse.Namespace,
                 summary: PushSummary) -> None:
    failed = summary.count("failure")
    if ctx.out.as_json:
        ctx.out.json({**_base(point, args), "destination": summary.peer,
                      "push": summary.public()})
    else:
        warned = summary.count("warning")
        ctx.out.text(
            f"Summary: {summary.count('success') + warned} of {len(summary.results)} "
            f"instance(s) of study {args.study} stored in {summary.peer}"
            + (f" ({warned} with a warning)" if warned else "")
            + f", {failed} failed, over {summary.associations} association(s)")
    if failed:
        error = PacsStoreFailed(f"{failed} of {len(summary.results)} instance(s) were not "
                                f"stored in {summary.peer}, each named above")
        error.in_output = ctx.out.as_json
        raise error
