"""Text and JSON output, and progress: a bar on a terminal, nothing on a pipe unless
--verbose (then a line every few seconds on stderr), never mixed into --json output."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.cli.progress_bar import Bar

WIDTH = 80
"""Prose wraps here: an 80-column terminal, a mail or a ticket shows each line whole."""


_CJK = "\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_CLOSING = "，。；：、）》」』】！？"
_ZH_UNIT = "年|个月|月|周|天|日|小时|分钟|秒|毫秒"
_TOKEN = re.compile(rf"\s+|\S*\0(?:{_ZH_UNIT})[{_CLOSING}]*|[{_CJK}][{_CLOSING}]*"
                    rf"|[^\s{_CJK}]+[{_CLOSING}]*")
"""Where a line may break: at spaces, and between Chinese characters (never before a
closing mark such as ， or ）, nor inside `15 分钟`)."""
_UNIT_SPACE = re.compile(rf"(?<=\d) (?=(?:[KMGTPE]i)?B\b|{_ZH_UNIT})")
"""The space between a number and its unit (`28.97 MiB`, `15 分钟`), never broken."""


def columns(text: str) -> int:
    """Terminal columns: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap(text: str, indent: int = 4) -> str:
    """`text` in lines of at most WIDTH terminal columns, the later ones indented by
    `indent`: still one message, and a path or id longer than a line is never cut."""
    lines: list[str] = []
    line = space = ""
    for token in _TOKEN.findall(_UNIT_SPACE.sub("\0", text)):
        if token.isspace():
            space = token
            continue
        if line.strip() and columns(line + space + token) > WIDTH:
            lines.append(line)
            line, space = " " * indent, ""
        line, space = line + space + token, ""
    lines.append(line)
    return "\n".join(lines).replace("\0", " ")


class Printer:
    def __init__(self, as_json: bool, verbose: int, quiet: bool) -> None:
        self.as_json = as_json
        self.verbose = verbose
        self.quiet = quiet
        self._lock = threading.Lock()

    def text(self, line: str = "") -> None:
        """Human output on stdout; suppressed under --json and --quiet. One write of the
        whole line under the lock: print() writes the text and its newline separately, so
        two threads (the daemon's jobs) could put two lines on one."""
        if not self.as_json and not self.quiet:
            with self._lock:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    def prose(self, text: str, indent: int = 4) -> None:
        """A sentence for a person, wrapped to 80 columns (wrap()), in one write."""
        self.text(wrap(text, indent))

    def json(self, doc: Any) -> None:
        """One JSON document (or one line of a JSON-lines stream) on stdout."""
        with self._lock:
            sys.stdout.write(json.dumps(doc, default=str) + "\n")
            sys.stdout.flush()

    def warn(self, line: str) -> None:
        with self._lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def progress(self, label: str) -> CliProgress:
        if self.quiet:
            return CliProgress(label, None, self, False)
        if sys.stderr.isatty() and not self.as_json:
            # Imported here, not at the top: only a terminal pays for rich.
            from medark.cli.progress_bar import Bar

            progress = CliProgress(label, None, self, False)
            progress.attach(Bar(label, progress.counts))
            return progress
        return CliProgress(label, None, self, self.verbose > 0)


class CliProgress:
    """Implements util.progress.Progress for a terminal or a log."""

    LOG_EVERY = 5.0

    def __init__(self, label: str, bar: Bar | None, printer: Printer, log: bool) -> None:
        self.label = label
        self.printer = printer
        self.files = 0
        self.nbytes = 0
        self.total_bytes: int | None = None
        self.total_files: int | None = None
        self._log = log
        self._last_log = time.monotonic()
        self._started = time.monotonic()
        self._bar = bar
        self._count_lock = threading.Lock()

    def attach(self, bar: Bar) -> None:
        """The bar reads counts() when it redraws (it needs this object to exist first)."""
        self._bar = bar

    def counts(self) -> tuple[int, int, int | None, int | None]:
        """Files and bytes done, and their totals, for the bar."""
        with self._count_lock:
            return self.files, self.nbytes, self.total_files, self.total_bytes

    def set_total(self, files: int | None, nbytes: int | None) -> None:
        with self._count_lock:
            self.total_files, self.total_bytes = files, nbytes

    @property
    def wants_total(self) -> bool:
        """Whether anyone looks at the progress (worth a parallel scan for the ETA)."""
        return self._bar is not None or self._log

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Called once per chunk read: two integer additions; the bar reads them when
        it redraws (ten times a second), the log checks the clock."""
        with self._count_lock:
            self.files += files
            self.nbytes += nbytes
        if self._log and time.monotonic() - self._last_log >= self.LOG_EVERY:
            self._last_log = time.monotonic()
            self._log_line(self._last_log - self._started)

    def _log_line(self, elapsed: float) -> None:
        elapsed = max(elapsed, 1e-6)
        if self.printer.as_json:  # restic's status lines, for tools that follow progress
            doc: dict[str, Any] = {
                "message_type": "status", "seconds_elapsed": round(elapsed),
                "files_done": self.files, "bytes_done": self.nbytes,
            }
            if self.total_bytes:
                doc.update(total_bytes=self.total_bytes, total_files=self.total_files,
                           percent_done=min(1.0, self.nbytes / self.total_bytes))
            self.printer.json(doc)
            return
        total = f" of {format_bytes(self.total_bytes)}" if self.total_bytes else ""
        self.printer.warn(
            f"[{self.label}] {self.files} files, {format_bytes(self.nbytes)}{total}, "
            f"{format_bytes(self.nbytes / elapsed)}/s"
        )

    def warn(self, text: str) -> None:
        if self._bar is not None:
            self._bar.print(text)
        else:
            self.printer.warn(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def stream_backup_totals(summary: dict[str, Any]) -> str:
    """The line a database backup prints: bytes read, time, bytes added and stored."""
    return (f"processed {format_bytes(int(str(summary['total_bytes_processed'])))} in "
            f"{format_duration(float(str(summary['total_duration'])))}; added "
            f"{format_bytes(int(str(summary['data_added'])))} "
            f"({format_bytes(int(str(summary['data_added_packed'])))} stored)")
