"""bench/server_bench.py at a tiny scale, so it cannot rot: a regional center of two
institutions, 100 jobs, 2 agents, two list endpoints (a token's and a session's) for 1 s
each under the load client the bench picks by itself (wrk when it is on PATH, as
`make test`'s Debian packages put it; the Python client otherwise), one "run now"
through a real `medark agent run` (long-polling 1 s: a stopping agent ends its poll
first). Nothing is timed: the figures only have to be there, every request answered 2xx."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from catalog_urls import PG_ADMIN

BENCH = Path(__file__).resolve().parents[2] / "bench" / "server_bench.py"


def test_server_bench_runs_at_a_tiny_scale(tmp_path: Path) -> None:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    database = f"medark_bench_smoke_{uuid.uuid4().hex[:10]}"
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--hospitals", "1", "--clinics", "1", "--systems",
         "4", "--jobs", "100", "--agents", "2", "--clients", "2", "--seconds", "1",
         "--solo-seconds", "1", "--runs", "1", "--processes", "1", "--job-starts", "1",
         "--agent-wait", "1",
         "--only", "(hospital token),/api/users", "--database", database,
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run now -> started" in done.stdout and "Traceback" not in done.stderr
    result = json.loads(out.read_text())
    client = "wrk" if shutil.which("wrk") else "python"
    assert result["load_client"] == client
    assert f"load client for the 2 clients: {client}" in done.stdout
    [shape] = result["shapes"]
    lists = shape["summary"]["lists"]
    assert [row["case"] for row in lists] == [
        "GET /api/jobs?limit=100 (hospital token)", "GET /api/users (secadmin session)"]
    for row in lists:
        assert row["errors"] == 0, row
        assert not math.isnan(row["p99_ms"]) and row["per_s"] > 0, row
    [run] = shape["runs"]
    assert all(row["requests"] > 0 for row in run["lists"])
    assert shape["summary"]["heartbeat"]["errors"] == 0
    assert shape["job_starts"]["runs"] == 1
    with psycopg.connect(PG_ADMIN) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (database,)).fetchone()
    assert left is None, "the bench left its database behind"
