"""`python -m medark.server.report_worker REPORT_ID`: make one queued report of the
management server (server/reports.py `generate`) in a process of its own, started by the
server with the catalog's URL in MEDARK_CATALOG (a URL may hold a password: never in
argv). Exit 0 when the report is settled (done, or failed with its reason), 2 for a
wrong invocation, 16 when the catalog cannot be reached; the server fails the report
then."""

from __future__ import annotations

import os
import sys

from medark.catalog.store import Catalog
from medark.errors import MedarkError
from medark.server.reports import generate


def main(argv: list[str]) -> int:
    url = os.environ.get("MEDARK_CATALOG", "")
    if len(argv) != 2 or not argv[1].isdigit() or not url:
        print("usage: MEDARK_CATALOG=URL python -m medark.server.report_worker REPORT_ID",
              file=sys.stderr)
        return 2
    try:
        catalog = Catalog(url)
        try:
            generate(catalog, int(argv[1]))
        finally:
            catalog.close()
    except MedarkError as exc:
        print(f"medark: {str(exc).splitlines()[0] if str(exc) else exc.code}",
              file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
