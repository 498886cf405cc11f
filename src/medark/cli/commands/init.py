"""`medark init`: create a repository (cipher suite and compression are fixed here)."""

from __future__ import annotations

import argparse

from medark.cli.command import Command
from medark.cli.context import Context
from medark.repo.compression import parse_compression
from medark.repo.crypto import DEFAULT_SUITE, SUITES
from medark.repo.retention import LockPolicy
from medark.service.session import init_repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cipher", default=DEFAULT_SUITE, choices=sorted(SUITES),
                   help=f"cipher suite (default {DEFAULT_SUITE}; sm4-gcm = SM4-GCM with SM3)")
    p.add_argument("--compression", default="zstd:3",
                   help="zstd:N (1..19), zstd, or none (default zstd:3)")
    p.add_argument("--lock-days", type=int, default=None, metavar="N",
                   help="immutable retention: lock every object for N days (S3 Object Lock; "
                        "the bucket is created with Object Lock when missing)")
    p.add_argument("--lock-mode", default="compliance", choices=("compliance", "governance"),
                   help="S3 Object Lock mode with --lock-days (default compliance: nobody "
                        "can shorten it; governance: accounts with a bypass permission can)")


def run(ctx: Context) -> int:
    compression = parse_compression(ctx.args.compression)
    location = ctx.location
    lock = (LockPolicy.new(ctx.args.lock_days, ctx.args.lock_mode)
            if ctx.args.lock_days is not None else None)
    repo = init_repository(location, ctx.password("enter password for new repository: "),
                           ctx.args.cipher, compression, ctx.cache_dir, lock=lock)
    try:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "initialized", "id": repo.config.id,
                          "repository": location, "cipher": repo.config.suite,
                          "compression": compression.label(),
                          "object_lock": lock.to_doc() if lock is not None else None})
        else:
            ctx.out.text(f"created medark repository {repo.config.id[:10]} at {location}")
            ctx.out.text(f"cipher {repo.config.suite}, compression {compression.label()}")
            if lock is not None:
                ctx.out.text(f"every object is locked for {lock.describe()} plus up to "
                             f"{lock.margin_days} day(s) of margin (S3 Object Lock)")
            ctx.out.text("Please note that knowledge of your password is required to access")
            ctx.out.text("the repository. Losing your password means that your data is")
            ctx.out.text("irrecoverably lost.")
    finally:
        repo.close()
    return 0


COMMAND = Command("init", "create a new repository", add_arguments, run)
