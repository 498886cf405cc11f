"""`medark serve`: a repository server for a local or NFS directory (rest: locations).

Append-only for every client unless `--full-access` is given with an auth file; loopback
only unless it has both TLS and an auth file (service/serve.py decides).
`medark serve hash-password` makes an auth-file line without the password touching argv
or the shell history."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.parser import global_options
from medark.errors import UsageError
from medark.service.serve import ServeOptions, open_server, run_until
from medark.storage.rest_auth import MODES, auth_line, hash_password

HELP = ("serve a repository directory over HTTP(S) for rest: locations: append-only for "
        "every client, full access only with --full-access and an auth file")
EPILOG = ("Without --auth-file the server listens on loopback only. Listening on any other "
          "address needs both TLS (--tls-cert/--tls-key) and --auth-file. Make auth-file "
          "lines with `medark serve hash-password --user NAME --mode append-only|full`.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("--path", type=Path,
                   help="the directory that holds (or will hold) the repository "
                        "(required to serve)")
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8000; beyond loopback "
                        "needs TLS and --auth-file)")
    access = p.add_mutually_exclusive_group()
    access.add_argument("--append-only", action="store_true",
                        help="every client append-only, whatever the auth file says (the "
                             "default without --full-access)")
    access.add_argument("--full-access", action="store_true",
                        help="the auth file's `full` users may delete (forget, prune); "
                             "needs --auth-file")
    p.add_argument("--auth-file", type=Path, metavar="FILE",
                   help="users, one `user:$argon2id$...:append-only|full` line each "
                        "(see hash-password)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE",
                   help="serve HTTPS with this certificate (PEM, chain after it)")
    p.add_argument("--tls-key", type=Path, metavar="FILE",
                   help="the certificate's private key (PEM)")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    h = sub.add_parser("hash-password", parents=[global_options()],
                       help="read a password (terminal or standard input) and print its "
                            "argon2id hash, or with --user a ready auth-file line",
                       description="read a password from the terminal (asked twice) or the "
                                   "first line of standard input, and print its argon2id "
                                   "hash, or with --user a ready auth-file line")
    h.add_argument("--user", metavar="NAME", help="print `NAME:HASH:MODE`")
    h.add_argument("--mode", choices=MODES, default=MODES[0],
                   help="the user's mode with --user (default append-only)")


def run(ctx: Context) -> int:
    if getattr(ctx.args, "action", None) == "hash-password":
        return _hash_password(ctx)
    return _serve(ctx)


def _serve(ctx: Context) -> int:
    args = ctx.args
    if args.path is None:
        raise UsageError("serve: --path DIR is required")
    serving = open_server(
        ServeOptions(args.path, args.listen, args.auth_file, args.full_access,
                     args.tls_cert, args.tls_key),
        ctx.out.text if ctx.out.verbose else lambda _line: None,
        lambda line: ctx.out.warn(f"medark: {line}"))
    reach = "loopback only" if serving.loopback_only else "all networks"
    if ctx.out.as_json:
        ctx.out.json({"message_type": "serving", "path": str(args.path), "url": serving.url,
                      "mode": serving.mode, "full_access": args.full_access,
                      "loopback_only": serving.loopback_only,
                      "tls": serving.url.startswith("rest:https")})
    else:
        ctx.out.text(f"serving {args.path} at {serving.url} ({serving.mode}, {reach})")
    if args.auth_file is None:
        ctx.out.warn("medark: serving append-only without an auth file: any local client "
                     "may add backups, none may delete them; forget/prune need "
                     "--full-access with --auth-file")
    elif serving.capped:
        ctx.out.warn(f"medark: {', '.join(serving.capped)}: `full` in the auth file but "
                     "served append-only (start with --full-access to let them delete)")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_until(serving.server, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _hash_password(ctx: Context) -> int:
    password = _read_password()
    if ctx.args.user:
        line = auth_line(ctx.args.user, password, ctx.args.mode)
    else:
        line = hash_password(password)
    if ctx.out.as_json:
        ctx.out.json({"message_type": "password_hash", "line": line})
    else:
        print(line, flush=True)
    return 0


def _read_password() -> str:
    """From the terminal, asked twice, or the first line of standard input; never argv."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("empty password: give one on the terminal or standard input")
    return password


COMMAND = Command("serve", HELP, add_arguments, run)
