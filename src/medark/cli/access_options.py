"""The options of the commands that read patient data (restore, dump, ls, find, diff,
pg/mysql restore), and the one way they record the read: `with audited_read(ctx, …)`
around it (service/access_audit.py; docs/audit.md, "What the command line records").

Its own module, importing nothing heavy, so that `medark restore --help` loads no
catalog (SQLAlchemy) or plan schema.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from medark.cli.plan_options import add_catalog_option, add_config_option

if TYPE_CHECKING:
    from medark.cli.context import Context
    from medark.service.access_audit import Access


def add_access_audit_options(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    add_catalog_option(p)
    p.add_argument("--allow-unaudited", action="store_true",
                   help="when the configured catalog cannot record this read (down, or "
                   "its audit key unreadable), read anyway with a warning instead of "
                   "refusing (exit 16): for a disaster recovery with the catalog down")


@contextmanager
def audited_read(ctx: Context, action: str, **detail: Any) -> Iterator[Access]:
    """One audit record for the read inside, when a catalog is configured."""
    from medark.service.access_audit import audited, configured_catalog

    args = ctx.args
    url = configured_catalog(args.catalog, args.config)
    with audited(action, ctx.location, url, args.allow_unaudited, ctx.out.warn,
                 **detail) as access:
        yield access
