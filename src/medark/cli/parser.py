"""The argument parser: restic-style option placement and the global options that every
command (and every subcommand, such as `pg wal-push`) accepts."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from medark.errors import UsageError
from medark.util import clock


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, and lets options follow positionals
    (`medark backup /a --tag x /b`, `medark ls latest -l /path`) as restic does."""

    _mixing = False
    _given: Sequence[str] = ()

    def error(self, message: str) -> None:  # type: ignore[override]
        if self._subparsers is None:  # a mistyped option explains most other errors here
            unknown = _unknown_option(self, self._given)  # (a required one "missing")
            if unknown is not None:
                raise UsageError(unknown_option(self, unknown))
        actions = _missing_actions(self, message)
        if actions:
            raise ShowHelp(f"`{self.prog}` needs one of: {', '.join(actions)}",
                           self.format_help())
        raise UsageError(message)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized(self, parsed, extras))
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's choice check, with the closest choice suggested (`medark backpu`)."""
        if action.choices is None or value in action.choices:
            return
        choices = [str(choice) for choice in action.choices]
        close = difflib.get_close_matches(str(value), choices, n=1)
        if isinstance(action, argparse._SubParsersAction):
            given = list(self._given)  # an unknown option before it: `--rpo x snapshots`
            unknown = _unknown_option(self, given[:given.index(value)] if value in given
                                      else [])
            if unknown is not None:
                raise argparse.ArgumentError(None, unknown_option(self, unknown))
            words = self.prog.split()[1:]  # "medark pg" -> the command typed so far
            typed = " ".join([*words, str(value)])
            hint = f"; did you mean '{' '.join([*words, close[0]])}'?" if close else ""
            raise argparse.ArgumentError(
                None, f"unknown command '{typed}'{hint} (`{self.prog} --help` lists them)")
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!r}{hint} (choose from {', '.join(choices)})")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self._mixing:
            self._given = list(args) if args is not None else sys.argv[1:]
        has_positionals = any(not action.option_strings for action in self._actions)
        passthrough = args is not None and "--" in args  # `-- CMD ARGS…` stays verbatim
        if self._mixing or passthrough or not has_positionals or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False



class ShowHelp(UsageError):
    """A command group named without its action (`medark snapshot`): main prints the
    group's help, which lists the actions, and exits with the usage code as bare
    `medark` does (under --json, this one-line error instead)."""

    def __init__(self, message: str, help_text: str) -> None:
        super().__init__(message)
        self.help_text = help_text


_REQUIRED = "the following arguments are required: "


def _missing_actions(parser: argparse.ArgumentParser, message: str) -> list[str]:
    """The actions to choose from when `message` says the parser's first positional, a
    choice of actions, is missing (then nothing positional was given); else none."""
    first = next((a for a in parser._actions if not a.option_strings), None)
    if first is None or first.choices is None or not message.startswith(_REQUIRED):
        return []
    if argparse._get_action_name(first) not in message[len(_REQUIRED):].split(", "):
        return []
    return [str(choice) for choice in first.choices]


def unrecognized(parser: argparse.ArgumentParser, parsed: argparse.Namespace,
                 extras: list[str]) -> str:
    """What is wrong with arguments nothing took: an unknown option is named with the
    closest option of the (sub)command it was given to (`backup --exlude`)."""
    chosen = _innermost(parser, parsed)
    unknown = next((e for e in extras if e.startswith("-") and e != "-"), None)
    if unknown is None:
        return f"unrecognized arguments: {' '.join(extras)} (see `{chosen.prog} --help`)"
    return unknown_option(chosen, unknown)


def unknown_option(parser: argparse.ArgumentParser, given: str) -> str:
    name = given.split("=", 1)[0]
    close = difflib.get_close_matches(name, list(parser._option_string_actions), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (see `{parser.prog} --help`)"
    return f"unknown option '{name}' for `{parser.prog}`{hint}"


def _unknown_option(parser: argparse.ArgumentParser, tokens: Sequence[str]) -> str | None:
    """The first of `tokens` that looks like an option and is none of the parser's (in
    full, abbreviated, or a short one with its value attached)."""
    options = parser._option_string_actions
    for token in tokens:
        if token == "--":
            return None
        name = token.split("=", 1)[0]
        if not token.startswith("-") or token == "-" or _is_number(token):
            continue
        if name.startswith("--"):
            if not any(option.startswith(name) for option in options):
                return token
        elif token[:2] not in options:
            return token
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _innermost(parser: argparse.ArgumentParser,
               parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command that `parsed` selected (`medark pg wal-push`)."""
    while True:
        sub = next((a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(parsed, sub.dest, None) if sub is not None else None
        if sub is None or chosen not in sub.choices:
            return parser
        parser = sub.choices[chosen]


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
    g.add_argument("--retry-lock", type=lock_wait, default=argparse.SUPPRESS,
                   metavar="DURATION", help="when the repository is locked, keep trying "
                   "for this long (30s, 5m, 1h; default: fail at once, exit 11)")
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


_WAIT_UNITS = {"s": 1, "m": 60, "h": 3600}
_WAIT = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def lock_wait(text: str) -> float:
    """--retry-lock's duration in seconds: Go's form, as restic's (30s, 5m, 1h30m)."""
    parts = _WAIT.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"invalid --retry-lock duration {text!r}: use e.g. 30s, 5m, 1h")
    return sum(float(n) * _WAIT_UNITS[u] for n, u in parts)


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
