"""`medark init`: create a repository (cipher suite and compression are fixed here)."""

from __future__ import annotations

import argparse

from medark.cli.command import Command
from medark.cli.context import Context
from medark.repo.compression import parse_compression
from medark.repo.crypto import DEFAULT_SUITE, SUITES
from medark.service.session import init_repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cipher", default=DEFAULT_SUITE, choices=sorted(SUITES),
                   help=f"cipher suite (default {DEFAULT_SUITE}; sm4-gcm = SM4-GCM with SM3)")
    p.add_argument("--compression", default="zstd:3",
                   help="zstd:N (1..19), zstd, or none (default zstd:3)")


def run(ctx: Context) -> int:
    compression = parse_compression(ctx.args.compression)
    location = ctx.location
    repo = init_repository(location, ctx.password("enter password for new repository: "),
                           ctx.args.cipher, compression, ctx.cache_dir)
    try:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "initialized", "id": repo.config.id,
                          "repository": location, "cipher": repo.config.suite,
                          "compression": compression.label()})
        else:
            ctx.out.text(f"created medark repository {repo.config.id[:10]} at {location}")
            ctx.out.text(f"cipher {repo.config.suite}, compression {compression.label()}")
            ctx.out.text("Please note that knowledge of your password is required to access")
            ctx.out.text("the repository. Losing your password means that your data is")
            ctx.out.text("irrecoverably lost.")
    finally:
        repo.close()
    return 0


COMMAND = Command("init", "create a new repository", add_arguments, run)
