"""The `medark` parser: every command listed, only the commands named loaded.

`medark --help` and a mistyped command need each command's name and line of help, not its
options, so they import no command module, and none of the database drivers, SQLAlchemy
or pydantic those bring: about 60 ms instead of 430 (issue 14). Shell completion needs
every option of every command and asks for them all (`every=True`).
"""

from __future__ import annotations

from collections.abc import Sequence

from medark import __version__
from medark.cli import commands
from medark.cli.parser import Parser, global_options


def build_parser(argv: Sequence[str] = (), every: bool = False) -> Parser:
    """With the commands that `argv` names in full (every token that is a command name,
    so an option value that happens to be one costs an import, not a wrong parse), the
    others as their name and help line only; with `every`, all in full."""
    common = global_options()
    parser = Parser(prog="medark", parents=[common],
                    description="Medark: deduplicated, encrypted, verified backups.")
    parser.add_argument("--version", action="version", version=f"medark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    named = set(commands.NAMES) if every else set(argv) & set(commands.NAMES)
    for name in commands.NAMES:
        if name not in named:  # listed, never selected: selecting it names it
            sub.add_parser(name, help=commands.SUMMARIES.get(name, ""), add_help=False)
            continue
        command = commands.load(name)
        command_parser = sub.add_parser(command.name, help=command.help,
                                        description=command.help, parents=[common])
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser
