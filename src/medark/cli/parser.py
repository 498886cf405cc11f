"""The argument parser: restic-style option placement and the global options that every
command (and every subcommand, such as `pg wal-push`) accepts."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from medark.errors import UsageError
from medark.util import clock


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, and lets options follow positionals
    (`medark backup /a --tag x /b`, `medark ls latest -l /path`) as restic does."""

    _mixing = False

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        has_positionals = any(not action.option_strings for action in self._actions)
        passthrough = args is not None and "--" in args  # `-- CMD ARGS…` stays verbatim
        if self._mixing or passthrough or not has_positionals or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def global_options() -> Parser:
    common = Parser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("-r", "--repo", default=argparse.SUPPRESS,
                   help="repository location (default: $MEDARK_REPO)")
    g.add_argument("--password-file", default=argparse.SUPPRESS,
                   help="read the password from the first line of this file")
    g.add_argument("--password-command", default=argparse.SUPPRESS,
                   help="run this command and read the password from its output")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable output (JSON, or JSON lines for streams)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more output; progress lines on a pipe")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only errors")
    g.add_argument("--cache-dir", default=argparse.SUPPRESS,
                   help="local cache directory (default: $MEDARK_CACHE_DIR or ~/.cache/medark)")
    g.add_argument("--no-cache", action="store_true", default=argparse.SUPPRESS,
                   help="use a temporary cache for this command only")
    g.add_argument("--no-lock", action="store_true", default=argparse.SUPPRESS,
                   help="read without a lock (read-only commands only): a read-only "
                   "repository, or a reader that must never hold up prune")
    g.add_argument("--limit-upload", type=rate_limit, default=argparse.SUPPRESS,
                   metavar="KiB/s", help="limit uploads to repositories to this rate")
    g.add_argument("--limit-download", type=rate_limit, default=argparse.SUPPRESS,
                   metavar="KiB/s", help="limit downloads from repositories to this rate")
    g.add_argument("--cacert", default=argparse.SUPPRESS, metavar="FILE",
                   help="trust only this CA certificate (PEM) for rest:https:// servers "
                   "(default: $MEDARK_CACERT, else the system's CAs)")
    return common


def add_source_password_options(p: argparse.ArgumentParser) -> None:
    """The password options of a second repository (`copy --from-repo`, `init
    --same-key-as`); without them the main repository's password is tried."""
    p.add_argument("--from-password-file", metavar="FILE",
                   help="that repository's password file (default: $MEDARK_FROM_PASSWORD_FILE)")
    p.add_argument("--from-password-command", metavar="COMMAND",
                   help="command printing that repository's password "
                        "(default: $MEDARK_FROM_PASSWORD_COMMAND)")


def rate_limit(text: str) -> float:
    """A bandwidth limit in KiB/s (restic's unit), a positive number."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"rate limit {text!r} is not a number of KiB/s") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"rate limit must be a positive number of KiB/s, not {text!r}")
    return value


def add_actions(parser: argparse.ArgumentParser, actions: dict[str, str]
                ) -> dict[str, argparse.ArgumentParser]:
    """Sub-commands (`pg wal-push`, `mysql restore`…), each taking the global options."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = global_options()
    return {name: sub.add_parser(name, help=text, description=text, parents=[common])
            for name, text in actions.items()}


def target_time(text: str) -> datetime:
    """A --time recovery target: ISO 8601, UTC when it names no zone."""
    try:
        return clock.parse_time(text)
    except ValueError:
        raise UsageError(f"--time {text!r} is not an ISO 8601 time") from None


class TagList(argparse.Action):
    """restic's tag options: each use adds a comma-separated list (`--tag a,b --tag c`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None,
                 option_string: str | None = None) -> None:
        tags = list(getattr(namespace, self.dest) or [])
        tags.extend(t.strip() for t in str(values or "").split(",") if t.strip())
        setattr(namespace, self.dest, tags)


def add_new_tags(p: argparse.ArgumentParser) -> None:
    """--tag of a command that makes a snapshot."""
    p.add_argument("--tag", action=TagList, default=[], metavar="TAG[,TAG]",
                   help="tags for the new snapshot (comma-separated; repeatable)")
