"""Finding PostgreSQL's own client and server programs for a given major version."""

from __future__ import annotations

import glob
import os
import re
import shutil

from medark.errors import UsageError


def find_program(name: str, major: int | None = None, bin_dir: str | None = None) -> str:
    """`bin_dir` if given; else Debian's /usr/lib/postgresql/<major>/bin (the server's
    major, or the newest installed); else PATH."""
    candidates: list[str] = []
    if bin_dir:
        candidates.append(os.path.join(bin_dir, name))
    else:
        if major is not None:
            candidates.append(f"/usr/lib/postgresql/{major}/bin/{name}")
        versions = sorted(
            (int(m.group(1)), p) for p in glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
            if (m := re.search(r"/postgresql/(\d+)/bin/", p))
        )
        candidates.extend(p for v, p in reversed(versions) if major is None or v >= major)
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    where = bin_dir or "/usr/lib/postgresql/*/bin or PATH"
    raise UsageError(f"{name} not found in {where} (install the PostgreSQL client "
                     "programs, or pass --pg-bin DIR)")
