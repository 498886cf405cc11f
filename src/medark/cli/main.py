"""Entry point: parse arguments, run one command, map errors to exit codes (only here).

Exit codes: 0 ok; 1 error; 2 usage; 3 snapshot written but some files unreadable;
4 snapshot written but flagged suspicious; 10 repository does not exist; 11 repository
locked; 12 wrong password; 13 object lock unavailable; 14 residency violation; 20-26 and
126 database errors (README); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from medark.cli.output import Printer
from medark.cli.parser import ShowHelp
from medark.cli.toplevel import build_parser
from medark.errors import ConfigInvalid, MedarkError, UsageError
from medark.util.memory import limit_arenas
from medark.util.pids import die_with_parent

EXIT_USAGE = 2


_DEFAULTS = {
    "repo": None, "password_file": None, "password_command": None, "json": False,
    "verbose": 0, "quiet": False, "cache_dir": None, "no_cache": False, "no_lock": False,
    "retry_lock": 0.0, "limit_upload": None, "limit_download": None, "cacert": None,
}


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(args_in)
    as_json = "--json" in args_in
    out = Printer(as_json=as_json, verbose=0, quiet=False)
    try:
        args = parser.parse_args(argv)
        for key, value in _DEFAULTS.items():
            if not hasattr(args, key):
                setattr(args, key, value)
        out = Printer(as_json=args.json, verbose=args.verbose, quiet=args.quiet)
        if args.cacert:  # read by the rest: backend, and inherited by restore_command
            os.environ["MEDARK_CACERT"] = str(args.cacert)
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_USAGE
        # here, not at the top: `medark --help` needs none of the repository stack
        from medark.cli.context import Context
        code: int = args.run(Context(args, out))
        return code
    except ShowHelp as exc:  # a command group without its action: what it offers
        if out.as_json:
            _report(out, exc, EXIT_USAGE)
        else:
            sys.stdout.write(exc.help_text)
        return EXIT_USAGE
    except UsageError as exc:
        _report(out, exc, EXIT_USAGE)
        return EXIT_USAGE
    except MedarkError as exc:
        _report(out, exc, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        out.warn("medark: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:
        # An operating-system failure no layer wrapped (a full disk, a vanished mount).
        where = f" ({exc.filename})" if exc.filename else ""
        _report(out, MedarkError(f"{exc.strerror or exc}{where}"), 1)
        return 1
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("MEDARK_DEBUG"):
            raise
        _report(out, MedarkError(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set MEDARK_DEBUG=1 for a traceback, and please report it)"), 1)
        return 1


def _report(out: Printer, exc: MedarkError, code: int) -> None:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lines = exc.problems if isinstance(exc, ConfigInvalid) else [message]
    if out.as_json and not exc.in_output:
        doc = {"message_type": "error", "code": exc.code, "exit_code": code,
               "message": message}
        if isinstance(exc, ConfigInvalid):
            doc["problems"] = exc.problems
        out.json(doc)
    for line in lines:  # a configuration file: one line per problem, like a compiler
        out.warn(f"medark: {line}")


def entry() -> None:
    die_with_parent()
    limit_arenas()
    code = main()
    # Every repository, cache and file is closed (and synced) by the time main returns;
    # what remains is the interpreter's teardown — freeing every module and object,
    # joining idle pool threads — about 50 ms that every command, and every WAL segment
    # PostgreSQL hands to `medark pg wal-push`, would pay for nothing.
    logging = sys.modules.get("logging")  # its handlers flushed, when a command used it
    if logging is not None:
        logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
