"""`medark server config import|export`: load an institution's medark.toml into the
management server's catalog as its next configuration version, or write a version out.

For a hospital's first load of the file it already runs on, from the server's host: it
acts as the actor `server` (the regional center's system administrator; whoever can run
it can open the catalog) and is audited as `config.change` like a change through the API.
The document is checked as `medark config check` checks a file (exit 15, each problem
with its line), and a DSN or URL with a password in it is refused.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from medark.cli.parser import global_options
from medark.errors import ConfigInvalid, ObjectNotFound, UsageError

if TYPE_CHECKING:
    from medark.catalog.store import Catalog
    from medark.cli.context import Context

_LINE = re.compile(r"^line (\d+):")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               catalog_option: Callable[[argparse.ArgumentParser, object], None]) -> None:
    """The `config` action of `medark server`; `catalog_option(parser, default)` adds
    --catalog as the other actions have it."""
    config = sub.add_parser("config", parents=[global_options()],
                            help="import an institution's medark.toml as its next "
                                 "configuration version, or export one",
                            description="import or export an institution's versioned "
                                        "protection configuration (docs/server.md)")
    actions = config.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    load = actions.add_parser("import", parents=[global_options()],
                              help="check FILE as `config check` does and save it as the "
                                   "institution's next version (exit 15 if invalid)")
    export = actions.add_parser("export", parents=[global_options()],
                                help="write a version (default the current) to FILE or "
                                     "standard output")
    for parser in (load, export):
        catalog_option(parser, argparse.SUPPRESS)
        parser.add_argument("--institution", required=True, metavar="NAME",
                            help="the institution (see GET /api/institutions)")
    load.add_argument("file", type=Path, metavar="FILE", help="the medark.toml to load")
    load.add_argument("--comment", default="", metavar="TEXT",
                      help="why (kept with the version and in the audit trail)")
    export.add_argument("file", type=Path, nargs="?", metavar="FILE",
                        help="where to write it (default: standard output)")
    export.add_argument("--version", type=int, metavar="N",
                        help="that version (default: the current one)")


def run(ctx: Context, catalog_url: str) -> int:
    from medark.catalog.store import Catalog

    catalog = Catalog(catalog_url)
    try:
        if ctx.args.config_action == "import":
            return _import(ctx, catalog)
        return _export(ctx, catalog)
    finally:
        catalog.close()


def _import(ctx: Context, catalog: Catalog) -> int:
    from medark.server import configs

    args = ctx.args
    try:
        document = args.file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{args.file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{args.file}: cannot read it: {exc}") from None
    current = configs.stored(catalog, args.institution)
    base = current[0].version if current else None
    try:
        saved = configs.save_config(catalog, configs.cli_principal(catalog),
                                    args.institution, document, args.comment, base)
    except configs.ConfigRejected as exc:  # as `config check` says it: FILE:LINE: ...
        problems = [_LINE.sub(lambda m: f"{args.file}:{m.group(1)}:", p, count=1)
                    for p in exc.problems]
        head = problems[0] if len(problems) == 1 else \
            f"{args.file}: {len(problems)} problems, the first: {problems[0]}"
        raise ConfigInvalid(head, problems) from None
    if ctx.out.as_json:
        ctx.out.json({"message_type": "config_saved", "institution": saved.institution,
                      "version": saved.version, "sha256": saved.sha256,
                      "author": saved.author})
    else:
        ctx.out.text(f"saved: {saved.institution} configuration version {saved.version} "
                     f"(sha256 {saved.sha256[:16]}…, {len(saved.config.plans)} plans)")
    return 0


def _export(ctx: Context, catalog: Catalog) -> int:
    from medark.server import configs
    from medark.util.files import atomic_write

    args = ctx.args
    found = configs.stored(catalog, args.institution, args.version)
    if found is None:
        which = f"version {args.version}" if args.version else "configuration yet"
        raise ObjectNotFound(f"{args.institution} has no {which}")
    info, document = found
    if args.file is None:
        sys.stdout.write(document)
        sys.stdout.flush()
        return 0
    atomic_write(args.file, document.encode(), 0o644)
    if ctx.out.as_json:
        ctx.out.json({"message_type": "config_exported", "institution": info.institution,
                      "version": info.version, "sha256": info.sha256,
                      "path": str(args.file)})
    else:
        ctx.out.text(f"{args.file}: {info.institution} configuration version "
                     f"{info.version}")
    return 0
