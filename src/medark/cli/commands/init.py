"""`medark init`: create a repository (cipher suite and compression are fixed here)."""

from __future__ import annotations

import argparse

from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.parser import add_source_password_options
from medark.errors import UsageError
from medark.policy.residency import NON_COMPLIANT, SiteLocation, residency
from medark.repo.compression import parse_compression
from medark.repo.retention import LockPolicy
from medark.repo.suites import DEFAULT_SUITE, SUITE_NAMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cipher", default=None, choices=sorted(SUITE_NAMES),
                   help=f"cipher suite (default {DEFAULT_SUITE}; sm4-gcm = SM4-GCM with SM3)")
    p.add_argument("--same-key-as", metavar="LOCATION",
                   help="share this repository's master key, cipher suite and chunking, so "
                        "`copy` between the two moves packs as they are (a new password "
                        "still protects the new repository)")
    add_source_password_options(p)
    p.add_argument("--compression", default="zstd:3",
                   help="zstd:N (1..19), zstd, or none (default zstd:3)")
    p.add_argument("--lock-days", type=int, default=None, metavar="N",
                   help="immutable retention: lock every object for N days (S3 Object Lock; "
                        "the bucket is created with Object Lock when missing)")
    p.add_argument("--lock-mode", default="compliance", choices=("compliance", "governance"),
                   help="S3 Object Lock mode with --lock-days (default compliance: nobody "
                        "can shorten it; governance: accounts with a bypass permission can)")
    p.add_argument("--location", metavar="CC[-SUB]", dest="site_location",
                   help="where the storage is, as an ISO 3166 code: CN, CN-SC (Sichuan), US; "
                        "recorded for good and judged for data residency (docs/compliance.md"
                        "#data-residency)")
    p.add_argument("--site", metavar="NAME",
                   help="with --location: free-text site name (campus, building, data center)")


def run(ctx: Context) -> int:
    from medark.service.residency import location_config
    from medark.service.session import init_repository

    compression = parse_compression(ctx.args.compression)
    location = ctx.location
    lock = (LockPolicy.new(ctx.args.lock_days, ctx.args.lock_mode)
            if ctx.args.lock_days is not None else None)
    site = _site_location(ctx)
    like = ctx.open_source(ctx.args.same_key_as) if ctx.args.same_key_as else None
    try:
        cipher = ctx.args.cipher or (like.config.suite if like else DEFAULT_SUITE)
        repo = init_repository(location, ctx.password("enter password for new repository: "),
                               cipher, compression, ctx.cache_dir, lock=lock, like=like,
                               extra=location_config(site))
    finally:
        if like is not None:
            like.close()
    verdict = residency(site)
    if verdict.verdict == NON_COMPLIANT:
        ctx.out.warn(f"medark: warning: {verdict.reason}")
    try:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "initialized", "id": repo.config.id,
                          "repository": location, "cipher": repo.config.suite,
                          "compression": compression.label(),
                          "object_lock": lock.to_doc() if lock is not None else None,
                          "location": site.to_doc() if site is not None else None,
                          "residency": verdict.public()})
        else:
            ctx.out.prose(f"created medark repository {repo.config.id[:10]} at {location}")
            ctx.out.text(f"cipher {repo.config.suite}, compression {compression.label()}")
            if lock is not None:
                ctx.out.text(f"every object is locked for {lock.describe()} plus up to "
                             f"{lock.margin_days} day(s) of margin (S3 Object Lock)")
            if site is not None:
                ctx.out.text(f"location {site.describe()}: {verdict.verdict}")
            ctx.out.text("Please note that knowledge of your password is required to access")
            ctx.out.text("the repository. Losing your password means that your data is")
            ctx.out.text("irrecoverably lost.")
    finally:
        repo.close()
    return 0


def _site_location(ctx: Context) -> SiteLocation | None:
    if ctx.args.site_location is None:
        if ctx.args.site is not None:
            raise UsageError("--site names the place of --location: give --location too")
        return None
    return SiteLocation.parse(ctx.args.site_location, ctx.args.site)


COMMAND = Command("init", "create a new repository", add_arguments, run)
