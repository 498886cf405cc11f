"""bench/console_bench.py at a tiny scale, so it cannot rot: two institutions, 100 jobs,
one cold load of each page, two live updates. Nothing is timed: the figures only have
to be there."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from catalog_urls import PG_ADMIN

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "console_bench.py"


def test_console_bench_runs_at_a_tiny_scale(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is absent (Debian's chromium: make debs installs it)")
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    database = f"medark_bench_smoke_{uuid.uuid4().hex[:10]}"
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--hospitals", "1", "--clinics", "1", "--systems",
         "4", "--jobs", "100", "--agents", "2", "--runs", "1", "--live", "2",
         "--database", database, "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "live update on /jobs" in done.stdout and "Traceback" not in done.stderr
    result = json.loads(out.read_text())
    pages = result["loads"]["pages"]
    assert {"/login", "/jobs"} <= set(pages), pages.keys()
    for path, page in pages.items():
        assert page["ready_ms"] > 0 and page["js_gzip"] > 0, path
        assert not page["errors"], (path, page["errors"])
    live = result["live"]
    assert len(live["running_ms"]) == len(live["succeeded_ms"]) == 2
    assert all(v > 0 for v in live["running_ms"] + live["succeeded_ms"]), live
    with psycopg.connect(PG_ADMIN) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (database,)).fetchone()
    assert left is None, "the bench left its database behind"
