"""`medark serve`: a repository server for a local or NFS directory (rest: locations),
append-only for backup clients so that their credentials cannot delete backups."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from medark.cli.command import Command
from medark.cli.context import Context
from medark.service.serve import open_server, run_until


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", required=True, type=Path,
                   help="the directory that holds (or will hold) the repository")
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8000)")
    p.add_argument("--append-only", action="store_true",
                   help="clients may add objects but not delete them (lock files excepted); "
                        "with --auth-file, each user's mode decides")
    p.add_argument("--auth-file", type=Path, metavar="FILE",
                   help="users, one `user:sha256-hex-of-password:append-only|full` per line")


def run(ctx: Context) -> int:
    args = ctx.args
    server = open_server(args.path, args.listen, args.append_only, args.auth_file,
                         ctx.out.text if ctx.out.verbose else lambda _line: None)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    mode = "per user" if args.auth_file else ("append-only" if args.append_only else "full")
    if ctx.out.as_json:
        ctx.out.json({"message_type": "serving", "path": str(args.path),
                      "url": f"rest:http://{host}:{port}/", "mode": mode})
    else:
        ctx.out.text(f"serving {args.path} at rest:http://{host}:{port}/ ({mode})")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_until(server, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


COMMAND = Command("serve", "serve a repository directory over HTTP (append-only for clients)",
                  add_arguments, run)
