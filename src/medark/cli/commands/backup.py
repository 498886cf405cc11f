"""`medark backup`: files and directories, or a command's output (--stdin-from-command)."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.parser import add_new_tags
from medark.config import environment
from medark.errors import PartialBackup, SuspiciousBackup, UsageError
from medark.policy.anomaly import Thresholds, Verdict, thresholds_from
from medark.snapshot.model import Snapshot
from medark.sources.files.excludes import Excluder
from medark.util.memory import fix_mmap_threshold
from medark.util.sizes import format_bytes, format_duration


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="files and directories to back up")
    add_new_tags(p)
    p.add_argument("--host", default="", help="host name to record (default: this host)")
    p.add_argument("-e", "--exclude", action="append", default=[], metavar="GLOB",
                   help="exclude paths matching GLOB (repeatable)")
    p.add_argument("--exclude-file", action="append", default=[], metavar="FILE",
                   help="read exclude patterns from FILE, one per line")
    p.add_argument("-x", "--one-file-system", action="store_true",
                   help="do not cross filesystem boundaries")
    p.add_argument("--parent", help="use this snapshot as the parent (default: latest match)")
    p.add_argument("-f", "--force", action="store_true",
                   help="read every file, ignoring the parent snapshot")
    p.add_argument("--stdin", action="store_true", help="store standard input as one file")
    p.add_argument("--stdin-from-command", action="store_true",
                   help="run the command after `--` and store its output; fail if it fails")
    p.add_argument("--stdin-filename", default="stdin", help="file name for stdin data")
    p.add_argument("--workers", type=int, default=0, help="worker threads (default: cores)")
    p.add_argument("--no-dicom-catalog", action="store_true",
                   help="do not record DICOM headers (by default the header of every new "
                        "or changed DICOM file goes to the snapshot's encrypted catalog, "
                        "for `medark dicom find`)")
    alert = p.add_argument_group("ransomware detection (docs/ransomware-detection.md)")
    alert.add_argument("--anomaly-min-share", metavar="SHARE",
                       help="flag when a signal reaches this share of the files "
                            "(default 10%%; MEDARK_ANOMALY_MIN_SHARE)")
    alert.add_argument("--anomaly-factor", metavar="X",
                       help="... and X times the source's baseline (default 5; "
                            "MEDARK_ANOMALY_FACTOR)")
    alert.add_argument("--anomaly-min-files", metavar="N",
                       help="... and at least N files (default 10; MEDARK_ANOMALY_MIN_FILES)")
    alert.add_argument("--anomaly-history", metavar="N",
                       help="baseline: the last N unflagged snapshots (default 10; "
                            "MEDARK_ANOMALY_HISTORY)")
    alert.add_argument("--anomaly-deletion-share", metavar="SHARE",
                       help="mass deletions flag from this share of the files instead "
                            "(default 30%%; MEDARK_ANOMALY_DELETION_SHARE)")


def anomaly_thresholds(args: argparse.Namespace) -> Thresholds:
    """Options first, then the environment, then the defaults."""
    pairs = (("min_share", args.anomaly_min_share, environment.ANOMALY_MIN_SHARE),
             ("factor", args.anomaly_factor, environment.ANOMALY_FACTOR),
             ("min_files", args.anomaly_min_files, environment.ANOMALY_MIN_FILES),
             ("history", args.anomaly_history, environment.ANOMALY_HISTORY),
             ("deletion_share", args.anomaly_deletion_share,
              environment.ANOMALY_DELETION_SHARE))
    return thresholds_from({key: flag if flag is not None else var.get()
                            for key, flag, var in pairs})


def run(ctx: Context) -> int:
    from medark.engine.backup import Backup
    from medark.engine.backup_model import BackupOptions
    from medark.engine.backup_stdin import backup_command, backup_stdin
    from medark.engine.dicom_catalog import CatalogBuilder

    args = ctx.args
    stream_mode = args.stdin or args.stdin_from_command
    if not stream_mode and not args.paths:
        raise UsageError("nothing to back up: give at least one PATH (or --stdin)")
    if args.stdin and args.stdin_from_command:
        raise UsageError("--stdin and --stdin-from-command exclude each other")
    excluder = Excluder.from_options(args.exclude, args.exclude_file)
    host = args.host or socket.gethostname()
    thresholds = anomaly_thresholds(args)
    verdict: Verdict | None = None
    fix_mmap_threshold()
    with ctx.repository(lock="shared", command="backup") as repo:
        progress = ctx.progress("backup")
        try:
            if args.stdin_from_command:
                snapshot, summary = backup_command(
                    repo, args.paths, args.stdin_filename, tags=args.tag, host=host,
                    progress=progress)
                errors: list[str] = []
            elif args.stdin:
                snapshot, summary = backup_stdin(
                    repo, sys.stdin.buffer, args.stdin_filename, tags=args.tag, host=host,
                    progress=progress)
                errors = []
            else:
                catalog = (None if args.no_dicom_catalog else
                           CatalogBuilder(repo, repo.config.chunker, repo.flush))
                options = BackupOptions(
                    paths=args.paths, tags=args.tag, host=host, excluder=excluder,
                    one_file_system=args.one_file_system, parent=args.parent,
                    force=args.force, workers=args.workers, anomaly=thresholds,
                    observer=catalog)
                result = Backup(repo, options, progress).run()
                for path in catalog.malformed_paths if catalog is not None else []:
                    ctx.out.warn(f"note: {path}: DICOM header is malformed (catalogued as "
                                 "such)")
                snapshot, summary, errors = result.snapshot, result.summary, result.errors
                verdict = result.verdict
        finally:
            progress.close()
    report(ctx, summary)
    if verdict is not None and verdict.suspicious:
        raise alert(ctx, snapshot, verdict, summary, errors)
    if errors:
        partial = PartialBackup(
            f"snapshot {snapshot.short_id} was saved, but {len(errors)} file(s) or "
            "directories could not be read (listed above)"
        )
        partial.in_output = ctx.out.as_json  # the summary's "errors" field says so
        raise partial
    return 0


def alert(ctx: Context, snapshot: Snapshot, verdict: Verdict, summary: dict[str, Any],
          errors: list[str]) -> SuspiciousBackup:
    """The ransomware alert: a warning on stderr and, with --json, an `alert` event line;
    returns the error that sets the exit code (the snapshot is saved either way)."""
    where = f"{snapshot.hostname}:{','.join(snapshot.paths)}"
    what = ("possible encryption of the source" if any(
        s.tripped for s in verdict.signals if s.name != "mass_deletions")
        else "mass deletion in the source")
    ctx.out.warn(f"ALERT: snapshot {snapshot.short_id} of {where} looks like ransomware "
                 f"activity ({what}):")
    for reason in verdict.reasons:
        ctx.out.warn(f"  - {reason}")
    ctx.out.warn("  recovery candidates (snapshots before it): medark snapshots --clean")
    if ctx.out.as_json:
        keys = ("files_new", "files_changed", "files_unmodified", "files_deleted",
                "bytes_changed", "content_sampled", "content_encrypted",
                "files_new_encrypted", "files_changed_encrypted", "files_ext_renamed",
                "files_unseen_ext")
        ctx.out.json({
            "message_type": "alert", "event": "ransomware_suspected",
            "snapshot_id": snapshot.id, "time": summary.get("backup_start"),
            "hostname": snapshot.hostname, "paths": snapshot.paths,
            "reasons": list(verdict.reasons), "anomaly": verdict.to_dict(),
            "stats": {k: summary.get(k) for k in keys},
        })
    unread = f"; {len(errors)} file(s) could not be read" if errors else ""
    error = SuspiciousBackup(f"snapshot {snapshot.short_id} was saved but flagged as "
                             f"suspicious{unread}")
    error.in_output = ctx.out.as_json  # the alert event says so
    return error


def report(ctx: Context, summary: dict[str, Any]) -> None:
    if ctx.out.as_json:
        ctx.out.json({"message_type": "summary", **summary})
        return
    ctx.out.text(
        f"Files:       {summary['files_new']} new, {summary['files_changed']} changed, "
        f"{summary['files_unmodified']} unmodified")
    if "dirs_new" in summary:
        ctx.out.text(
            f"Dirs:        {summary['dirs_new']} new, {summary['dirs_changed']} changed, "
            f"{summary['dirs_unmodified']} unmodified")
    if "files_deleted" in summary:
        sampled = summary["content_sampled"]
        share = summary["content_encrypted"] / sampled if sampled else 0.0
        ctx.out.prose(
            f"Changes:     {summary['files_deleted']} deleted, "
            f"{format_bytes(summary['bytes_changed'])} in new and changed files, "
            f"{share:.0%} of new content looks encrypted", indent=13)
    ctx.out.text(
        f"Added to the repository: {format_bytes(summary['data_added'])} "
        f"({format_bytes(summary['data_added_packed'])} stored)")
    ctx.out.prose(
        f"processed {summary['total_files_processed']} files, "
        f"{format_bytes(summary['total_bytes_processed'])} "
        f"(read {format_bytes(summary['bytes_read'])}) in "
        f"{format_duration(summary['total_duration'])}")
    dicom = summary.get("dicom")
    if dicom and (dicom["instances"] or dicom["malformed"]):
        ctx.out.text(
            f"DICOM:       {dicom['instances']} instances "
            f"({dicom['parsed']} headers read, {dicom['carried']} carried over, "
            f"{dicom['malformed']} malformed)")
    ctx.out.text(f"snapshot {summary['snapshot_id'][:8]} saved")


COMMAND = Command("backup", "back up files, directories or a command's output",
                  add_arguments, run)
