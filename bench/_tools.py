"""Adapters that turn benchmark steps into Medark, restic and borg command lines.

Every tool gets the same password through its own environment variable, its own
repository directory and its own cache directory under the work directory, so that
nothing from ``~/.cache`` or the caller's environment leaks into a measurement.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "medark-bench-password-not-a-secret"
BORG_COMPRESSION = "zstd,3"
RESTIC_COMPRESSION = "auto"
RESTIC_REPO_VERSION = "2"
TOOL_NAMES = ("medark", "restic", "borg")
_ENV_PREFIXES = ("MEDARK_", "RESTIC_", "BORG_")


@dataclass
class BackupStats:
    """What a tool said about one backup (None where it said nothing)."""

    data_added: int | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_unmodified: int | None = None
    total_bytes_processed: int | None = None
    snapshot_id: str | None = None
    raw: dict[str, object] = field(default_factory=dict)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _json_objects(text: str) -> list[dict[str, object]]:
    """The whole text as one JSON object, else every line that is a JSON object."""
    text = text.strip()
    try:
        whole = json.loads(text)
    except ValueError:
        pass
    else:
        return [whole] if isinstance(whole, dict) else []
    found: list[dict[str, object]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


def _restic_style_summary(stdout: str) -> BackupStats:
    """Parse restic's (and Medark's, which copies it) ``backup --json`` summary."""
    summary: dict[str, object] | None = None
    for obj in _json_objects(stdout):
        if obj.get("message_type") == "summary" or "data_added" in obj:
            summary = obj
    if summary is None:
        return BackupStats()
    snap = summary.get("snapshot_id")
    return BackupStats(
        data_added=_int_or_none(summary.get("data_added")),
        files_new=_int_or_none(summary.get("files_new")),
        files_changed=_int_or_none(summary.get("files_changed")),
        files_unmodified=_int_or_none(summary.get("files_unmodified")),
        total_bytes_processed=_int_or_none(summary.get("total_bytes_processed")),
        snapshot_id=snap if isinstance(snap, str) else None,
        raw=summary,
    )


class Tool:
    """One tool configuration (a column of the results table)."""

    name = ""

    def __init__(self, label: str, exe: str) -> None:
        self.label = label
        self.exe = exe

    # -- environment -------------------------------------------------------------------
    def env(self, repo: Path, cache: Path) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
        base.update(self._env(repo, cache))
        return base

    def _env(self, repo: Path, cache: Path) -> dict[str, str]:
        raise NotImplementedError

    # -- commands ----------------------------------------------------------------------
    def init_cmd(self) -> list[str]:
        raise NotImplementedError

    def backup_cmd(self, path: Path, archive: str) -> list[str]:
        raise NotImplementedError

    def parse_backup(self, stdout: str) -> BackupStats:
        return _restic_style_summary(stdout)

    def restore_cmd(self, target: Path, archive: str) -> tuple[list[str], Path | None]:
        """Command and working directory that restore ``archive`` below ``target``."""
        raise NotImplementedError

    def check_cmd(self) -> list[str]:
        raise NotImplementedError

    # -- description -------------------------------------------------------------------
    def version(self) -> str:
        try:
            out = subprocess.run(
                [self.exe, "--version"], capture_output=True, text=True, timeout=60, check=False
            )
        except OSError as exc:
            return f"unavailable ({exc})"
        text = (out.stdout.strip() or out.stderr.strip()).splitlines()
        return text[0] if text else f"unknown (exit {out.returncode})"

    def settings(self) -> str:
        raise NotImplementedError


class Medark(Tool):
    name = "medark"

    def __init__(self, label: str, exe: str, compression: str | None) -> None:
        super().__init__(label, exe)
        self.compression = compression

    def _env(self, repo: Path, cache: Path) -> dict[str, str]:
        return {
            "MEDARK_REPO": str(repo),
            "MEDARK_PASSWORD": PASSWORD,
            "MEDARK_CACHE_DIR": str(cache),
        }

    def init_cmd(self) -> list[str]:
        cmd = [self.exe, "init"]
        if self.compression:
            cmd += ["--compression", self.compression]
        return cmd

    def backup_cmd(self, path: Path, archive: str) -> list[str]:
        return [self.exe, "backup", "--json", str(path)]

    def restore_cmd(self, target: Path, archive: str) -> tuple[list[str], Path | None]:
        return [self.exe, "restore", "latest", "--target", str(target)], None

    def check_cmd(self) -> list[str]:
        return [self.exe, "check", "--read-data"]

    def settings(self) -> str:
        comp = f"--compression {self.compression}" if self.compression else "default compression"
        return f"medark init {comp}; encryption always on"


class Restic(Tool):
    name = "restic"

    def _env(self, repo: Path, cache: Path) -> dict[str, str]:
        return {
            "RESTIC_REPOSITORY": str(repo),
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": str(cache),
        }

    def init_cmd(self) -> list[str]:
        return [self.exe, "init", "--repository-version", RESTIC_REPO_VERSION]

    def backup_cmd(self, path: Path, archive: str) -> list[str]:
        return [self.exe, "backup", "--json", "--compression", RESTIC_COMPRESSION, str(path)]

    def restore_cmd(self, target: Path, archive: str) -> tuple[list[str], Path | None]:
        return [self.exe, "restore", "latest", "--target", str(target)], None

    def check_cmd(self) -> list[str]:
        return [self.exe, "check", "--read-data"]

    def version(self) -> str:
        try:
            out = subprocess.run(
                [self.exe, "version"], capture_output=True, text=True, timeout=60, check=False
            )
        except OSError as exc:
            return f"unavailable ({exc})"
        return out.stdout.strip() or f"unknown (exit {out.returncode})"

    def settings(self) -> str:
        return (
            f"restic init --repository-version {RESTIC_REPO_VERSION}; "
            f"backup --compression {RESTIC_COMPRESSION} (zstd, restic's default level); "
            "encryption always on (AES-256-CTR + Poly1305-AES)"
        )


class Borg(Tool):
    name = "borg"

    def _env(self, repo: Path, cache: Path) -> dict[str, str]:
        return {
            "BORG_REPO": str(repo),
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": str(cache),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init_cmd(self) -> list[str]:
        return [self.exe, "init", "--encryption", "repokey-blake2"]

    def backup_cmd(self, path: Path, archive: str) -> list[str]:
        return [
            self.exe,
            "create",
            "--json",
            "--compression",
            BORG_COMPRESSION,
            f"::{archive}",
            str(path),
        ]

    def parse_backup(self, stdout: str) -> BackupStats:
        objs = _json_objects(stdout)
        if not objs:
            return BackupStats()
        archive = objs[-1].get("archive")
        if not isinstance(archive, dict):
            return BackupStats(raw=objs[-1])
        stats = archive.get("stats")
        stats = stats if isinstance(stats, dict) else {}
        return BackupStats(
            data_added=_int_or_none(stats.get("deduplicated_size")),
            total_bytes_processed=_int_or_none(stats.get("original_size")),
            snapshot_id=str(archive.get("name")),
            raw=stats,
        )

    def restore_cmd(self, target: Path, archive: str) -> tuple[list[str], Path | None]:
        # borg extracts into the current directory, paths without their leading '/'.
        return [self.exe, "extract", f"::{archive}"], target

    def check_cmd(self) -> list[str]:
        return [self.exe, "check", "--verify-data"]

    def settings(self) -> str:
        return (
            "borg init --encryption repokey-blake2 (AES-256-CTR + BLAKE2b MAC); "
            f"create --compression {BORG_COMPRESSION}"
        )


def restic_supports_compression(exe: str) -> bool:
    """restic >= 0.14 is needed for repository v2 (compression)."""
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=False)
    match = re.search(r"restic (\d+)\.(\d+)", out.stdout)
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= (0, 14)


def build_tools(names: list[str], medark_exe: str, medark_levels: list[str]) -> list[Tool]:
    """Tool objects in the order given; one Medark object per compression level."""
    tools: list[Tool] = []
    for name in names:
        if name == "medark":
            if medark_levels:
                tools += [Medark(f"medark[{lvl}]", medark_exe, lvl) for lvl in medark_levels]
            else:
                tools.append(Medark("medark", medark_exe, None))
        elif name == "restic":
            tools.append(Restic("restic", shutil.which("restic") or "restic"))
        elif name == "borg":
            tools.append(Borg("borg", shutil.which("borg") or "borg"))
        else:
            raise ValueError(f"unknown tool {name!r} (choose from {', '.join(TOOL_NAMES)})")
    return tools
