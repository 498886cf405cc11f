"""The `medark` parser: every command listed, only the commands named loaded.

`medark --help` and a mistyped command need each command's name and line of help, not its
options, so they import no command module, and none of the database drivers, SQLAlchemy
or pydantic those bring: about 60 ms instead of 430 (issue 14). Shell completion needs
every option of every command and asks for them all (`every=True`). A command line whose
command is certain gets that command's parser alone: listing the other forty cost 15 ms
of every command's start.
"""

from __future__ import annotations

from collections.abc import Sequence

from medark import __version__
from medark.cli import commands
from medark.cli.parser import Parser, ShowHelp, global_options
from medark.errors import UsageError


def build_parser(argv: Sequence[str] = (), every: bool = False) -> Parser:
    """With the command `argv` runs alone when that is certain (_chosen); else with the
    commands that `argv` names in full (every token that is a command name, so an option
    value that happens to be one costs an import, not a wrong parse), the others as their
    name and help line only; with `every`, all in full."""
    common = global_options()
    parser = Parser(prog="medark", parents=[common],
                    description="Medark: deduplicated, encrypted, verified backups.")
    parser.add_argument("--version", action="version", version=f"medark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = None if every else _chosen(argv, common)
    named = (set(commands.NAMES) if every else {chosen} if chosen is not None
             else set(argv) & set(commands.NAMES))
    for name in commands.NAMES:
        if name not in named:  # listed, never selected: selecting it names it
            if chosen is None:  # for --help and the suggestion for a mistyped command
                sub.add_parser(name, help=commands.SUMMARIES.get(name, ""),
                               add_help=False)
            continue
        command = commands.load(name)
        command_parser = sub.add_parser(command.name, help=command.help,
                                        description=command.help, parents=[common])
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def _chosen(argv: Sequence[str], common: Parser) -> str | None:
    """The command `argv` runs, when that is certain: the first token the global options
    leave, if it is a command's name. None for anything else (--help, --version, an
    unknown or mistyped option or command, a bad global option), which the full parser
    then explains."""
    try:
        _options, rest = common.parse_known_args(list(argv))
    except (UsageError, ShowHelp):
        return None
    return rest[0] if rest and rest[0] in commands.NAMES else None
